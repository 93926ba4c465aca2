// Entry point: mount the view named by the shell's data-page.

import { config, reportConnection } from "./api.js";
import { mountDashboard } from "./dashboard.js";
import { mountModel } from "./model.js";
import { mountPrompt } from "./prompt.js";

const views = { dashboard: mountDashboard, model: mountModel, prompt: mountPrompt };
const view = document.getElementById("view");
reportConnection("page", null);
(views[config.page] ?? mountDashboard)(view);
document.documentElement.dataset.ready = "true";
