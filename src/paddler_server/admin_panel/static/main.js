// Entry point: mount the view named by the shell's data-page.

import { config, reportConnection } from "./api.js";
import { mountLogOut } from "./auth.js";
import { mountDashboard } from "./dashboard.js";
import { h } from "./dom.js";
import { mountModel } from "./model.js";
import { mountPoolSwitcher } from "./pools.js";
import { mountPrompt } from "./prompt.js";

/** Any other path (the server answers every one with the shell, as Paddler does). */
function mountNotFound(view) {
  view.replaceChildren(
    h("section", { class: "card", dataset: { role: "not-found" } },
      h("h2", {}, "No such page"),
      h("p", {}, `There is no page at ${location.pathname}. `,
        h("a", { href: "/" }, "Open the dashboard"), ".")));
}

const views = { dashboard: mountDashboard, model: mountModel, prompt: mountPrompt, "not-found": mountNotFound };
const view = document.getElementById("view");
reportConnection("page", null);
mountPoolSwitcher();
(views[config.page] ?? mountDashboard)(view);
mountLogOut();
document.documentElement.dataset.ready = "true";
