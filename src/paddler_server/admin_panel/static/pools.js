// The model pool the panel shows and edits. It is named in the page's URL (?pool=NAME), so a
// reload or a bookmark keeps it; no ?pool means the "default" pool, as on Paddler's routes.
// The switcher in the top bar appears once the balancer knows more than one pool.

import { LiveStream } from "./api.js";
import { h, replace } from "./dom.js";

export const DEFAULT_POOL = "default";

/** The chosen pool's name. */
export const currentPool = new URLSearchParams(location.search).get("pool") || DEFAULT_POOL;

/** `path` (a panel page) with `pool` in its query; the default pool needs none. */
export function withPool(path, pool = currentPool) {
  const url = new URL(path, location.origin);
  if (pool === DEFAULT_POOL) url.searchParams.delete("pool");
  else url.searchParams.set("pool", pool);
  return url.pathname + url.search + url.hash;
}

/** A management path of the chosen pool: poolPath("agents/stream"). */
export function poolPath(suffix) {
  return `/api/v1/pools/${encodeURIComponent(currentPool)}/${suffix}`;
}

/** Where the chosen pool's desired state lives: Paddler's own route for "default". */
export function desiredStatePath() {
  return currentPool === DEFAULT_POOL ? "/api/v1/balancer_desired_state" : poolPath("desired_state");
}

/** "the cluster" while only the default pool exists, else "pool NAME" (for labels). */
export function poolLabel(pools) {
  return pools.length <= 1 && currentPool === DEFAULT_POOL ? "the cluster" : `pool ${currentPool}`;
}

const listeners = new Set();
let latest = null;

/** Call `listener(pools)` with every list of pools (GET /api/v1/pools), now if one is known. */
export function onPools(listener) {
  listeners.add(listener);
  if (latest) listener(latest);
}

function option(pool) {
  const agents = `${pool.agents} agent${pool.agents === 1 ? "" : "s"}`;
  return h("option", { value: pool.name, selected: pool.name === currentPool }, `${pool.name} · ${agents}`);
}

/**
 * The pool switcher in the top bar, and the pool carried by the top bar's links. Switching
 * loads the same page for the other pool, so every live view starts over on its streams.
 */
export function mountPoolSwitcher() {
  for (const link of document.querySelectorAll(".topbar a[href^='/']")) {
    link.setAttribute("href", withPool(link.getAttribute("href")));
  }
  const select = h("select", { id: "pool-switcher", "aria-label": "Pool" });
  const switcher = h("label", { class: "pool-switcher", hidden: true, title: "The model pool this page shows" }, "Pool ", select);
  const notice = h("div", { class: "form-error pool-notice", role: "alert", hidden: true, dataset: { role: "unknown-pool" } });
  document.querySelector(".topbar nav")?.after(switcher);
  document.getElementById("view")?.before(notice);
  select.addEventListener("change", () => location.assign(withPool(location.pathname, select.value)));

  new LiveStream("/api/v1/pools/stream", (snapshot) => {
    const pools = snapshot.pools ?? [];
    latest = pools;
    const known = pools.some((p) => p.name === currentPool);
    const options = pools.map(option);
    if (!known) options.push(h("option", { value: currentPool, selected: true }, `${currentPool} · unknown`));
    replace(select, options);
    switcher.hidden = options.length < 2;
    notice.hidden = known;
    if (!known) {
      replace(notice, `The balancer has no pool named “${currentPool}”. It appears when an agent joins it (paddler agent --pool ${currentPool}) or its desired state is set on the Model page. `,
        h("a", { href: withPool(location.pathname, DEFAULT_POOL) }, "Show the default pool"), ".");
    }
    for (const listener of listeners) listener(pools);
  });
}
