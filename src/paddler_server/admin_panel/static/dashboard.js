// Dashboard: configuration, live agents and buffer, throughput chart, "add agent" box; the
// agents, buffer and model are the chosen pool's (pools.js).

import { renderAgents } from "./agents.js";
import { browserAddr, config, getJson, getText, LiveStream } from "./api.js";
import { LiveChart } from "./chart.js";
import { copyButton, h, replace } from "./dom.js";
import { describeModel } from "./desired_state.js";
import { agentTokensPerSecond, bufferedRequests, generatedTokens, parsePrometheus } from "./metrics.js";
import { currentPool, DEFAULT_POOL, desiredStatePath, onPools, poolLabel, poolPath, withPool } from "./pools.js";

const METRICS_PERIOD_MS = 2000;
const COUNTER_WINDOW_MS = 10_000;

function stat(label, role, hint) {
  return h("div", { class: "stat" },
    h("span", { class: "stat-label" }, label),
    h("strong", { class: "stat-value", dataset: { role } }, "–"),
    hint ? h("span", { class: "stat-hint muted" }, hint) : null);
}

function configSection() {
  const row = (label, value, unit = "") => [h("dt", {}, label),
    h("dd", {}, value === null ? h("span", { class: "muted" }, "disabled") : h("code", {}, `${value}${unit}`))];
  return h("section", { class: "card" },
    h("h2", {}, "Configuration"),
    h("dl", { class: "config", dataset: { role: "configuration" } },
      row("Management", config.managementAddr),
      row("Inference", config.inferenceAddr),
      row("OpenAI-compatible", config.compatOpenaiAddr),
      row("Buffered request timeout", config.bufferedRequestTimeoutMs, " ms"),
      row("Max buffered requests", config.maxBufferedRequests),
      row("StatsD", config.statsdAddr),
      config.statsdAddr ? row("StatsD prefix", config.statsdPrefix) : null,
      config.statsdAddr ? row("StatsD interval", config.statsdReportingIntervalMs, " ms") : null,
      config.statsdAddr ? null : row("Metrics prefix", config.statsdPrefix)));
}

function addAgentSection() {
  const name = h("input", { type: "text", value: "my-agent", "aria-label": "Agent name", size: 12 });
  const slots = h("input", { type: "number", value: "4", min: "1", "aria-label": "Slots", class: "narrow" });
  const command = h("code", { class: "command", dataset: { role: "agent-command" } });
  const update = () => {
    const nameArg = name.value.trim() ? ` --name ${name.value.trim()}` : "";
    const scheme = config.tls ? "wss://" : "";
    const token = config.agentToken ? " --token $PADDLER_AGENT_TOKEN" : "";
    const pool = currentPool === DEFAULT_POOL ? "" : ` --pool ${currentPool}`;
    command.textContent = `paddler agent --management-addr ${scheme}${browserAddr(config.managementAddr)}${nameArg}${pool}${token} --slots ${slots.value || 4}`;
  };
  name.addEventListener("input", update);
  slots.addEventListener("input", update);
  update();
  return h("section", { class: "card" },
    h("h2", {}, "Add an agent"),
    h("p", { class: "muted" }, currentPool === DEFAULT_POOL
      ? "Run this on any machine that can reach the management address. The agent loads the cluster's model and its slots appear here."
      : `Run this on any machine that can reach the management address. The agent joins pool ${currentPool}, loads its model, and its slots appear here.`),
    h("div", { class: "inline-fields" }, h("label", {}, "Name ", name), h("label", {}, "Slots ", slots)),
    h("div", { class: "command-box" }, command, copyButton(() => command.textContent)));
}

function modelSummary(container) {
  const refresh = async () => {
    try {
      const state = await getJson(desiredStatePath());
      const p = state.inference_parameters;
      replace(container,
        h("dl", { class: "config" },
          h("dt", {}, "Model"), h("dd", { dataset: { role: "desired-model" }, title: describeModel(state.model) }, describeModel(state.model, { short: true })),
          h("dt", {}, "Context size"), h("dd", { dataset: { role: "desired-context-size" } }, String(p.context_size)),
          h("dt", {}, "Mode"), h("dd", {}, p.enable_embeddings ? "embeddings (generation off)" : "token generation"),
          h("dt", {}, "Chat template"), h("dd", {}, state.use_chat_template_override ? "override" : "model's own")),
        h("a", { href: withPool("/model"), class: "button secondary" }, "Change model…"));
    } catch (error) {
      replace(container, h("p", { class: "error" }, `Cannot read the desired state: ${error.message}`));
    }
  };
  refresh();
  return refresh;
}

export function mountDashboard(view) {
  const agentsList = h("div", { class: "agents", id: "agents", "aria-busy": "true" });
  const agentsState = h("span", { class: "stream-state" });
  const summary = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const chart = new LiveChart({
    windowSeconds: 300,
    series: [
      { key: "tps", label: "Generated tokens/s", color: "#0f8fa3", axis: "left" },
      { key: "queue", label: "Buffered requests", color: "#d9822b", axis: "right" },
    ],
  });
  const chartNote = h("p", { class: "muted small" });

  replace(view,
    h("div", { class: "stats" },
      stat("Buffered requests", "buffered", `of at most ${config.maxBufferedRequests}`),
      stat("Agents", "agent-count"),
      stat("Slots busy / total", "slot-totals"),
      stat("Generated tokens/s", "tokens-per-second", "whole cluster, from /metrics")),
    h("div", { class: "columns" },
      h("div", { class: "main-column" },
        h("section", { class: "card" },
          h("h2", {}, "Agents ", agentsState),
          agentsList),
        h("section", { class: "card" },
          h("h2", {}, "Throughput and queue"),
          chart.element, chartNote)),
      h("aside", { class: "side-column" },
        h("section", { class: "card" }, h("h2", { dataset: { role: "model-title" } }, currentPool === DEFAULT_POOL ? "Cluster model" : `Model of pool ${currentPool}`), summary),
        addAgentSection(),
        configSection())));

  const set = (role, text) => { view.querySelector(`[data-role="${role}"]`).textContent = text; };
  let buffered = null;
  let lastAgentsKey = "";
  const refreshSummary = modelSummary(summary);
  setInterval(refreshSummary, 10_000); // the state may change with no agent connected

  let agentRates = new Map();
  let poolAgents = new Set();
  let onlyPool = currentPool === DEFAULT_POOL;
  onPools((pools) => {
    onlyPool = pools.length <= 1 && currentPool === DEFAULT_POOL;
    view.querySelector("[data-role=tokens-per-second]").nextElementSibling.textContent = onlyPool
      ? "whole cluster, from /metrics" : `${poolLabel(pools)}, from /metrics`;
  });
  const showAgentRates = (rates) => {
    agentRates = rates;
    for (const card of agentsList.querySelectorAll("article.agent")) {
      const rate = rates.get(card.dataset.agentId);
      const el = card.querySelector("[data-role=agent-tps]");
      if (el) el.textContent = rate > 0 ? `${rate.toFixed(1)} tokens/s` : "";
    }
  };

  const stateText = (state) => ({ live: "", connecting: "connecting…", disconnected: "disconnected — retrying" }[state]);
  new LiveStream(poolPath("agents/stream"), (snapshot) => {
    const agents = snapshot.agents ?? [];
    poolAgents = new Set(agents.map((a) => a.id));
    agentsList.removeAttribute("aria-busy");
    renderAgents(agentsList, agents);
    showAgentRates(agentRates);
    set("agent-count", String(agents.length));
    const busy = agents.reduce((n, a) => n + a.slots_processing, 0);
    const total = agents.reduce((n, a) => n + a.slots_total, 0);
    set("slot-totals", `${busy} / ${total}`);
    const key = agents.map((a) => `${a.id}:${a.state_application_status}:${a.model_path}`).join("|");
    if (key !== lastAgentsKey) { lastAgentsKey = key; refreshSummary(); }
  }, (state) => {
    agentsState.textContent = stateText(state);
    agentsState.dataset.state = state;
    agentsList.classList.toggle("stale", state === "disconnected");
  });
  new LiveStream(poolPath("buffered_requests/stream"), (snapshot) => {
    buffered = snapshot.buffered_requests_current;
    set("buffered", String(buffered));
  });

  const counterHistory = [];
  const poll = async () => {
    let tps = null;
    try {
      const samples = parsePrometheus(await getText("/metrics"));
      const total = generatedTokens(samples, config.statsdPrefix, onlyPool ? null : currentPool);
      const perAgent = new Map([...agentTokensPerSecond(samples, config.statsdPrefix)]
        .filter(([id]) => onlyPool || poolAgents.has(id)));
      const now = performance.now();
      showAgentRates(perAgent);
      const live = [...perAgent.values()].reduce((a, b) => a + b, 0);
      if (total === null && perAgent.size === 0) {
        chartNote.textContent = "This balancer exports no generated-token counter on /metrics; only the queue is charted.";
      } else {
        chartNote.textContent = "";
        // The per-agent gauges (10 s window) are smooth; the counter grows only when a
        // request finishes, so it is the fallback when the gauges say nothing.
        if (total !== null) {
          counterHistory.push({ total, now });
          if (counterHistory[0].total > total) counterHistory.splice(0, counterHistory.length - 1);
          while (counterHistory.length > 2 && now - counterHistory[1].now >= COUNTER_WINDOW_MS) counterHistory.shift();
        }
        // Averaged over ~10 s like the gauges, so a request finishing is not a spike.
        const oldest = counterHistory[0];
        const counted = total !== null && oldest && now > oldest.now
          ? (total - oldest.total) / ((now - oldest.now) / 1000) : null;
        tps = live > 0 ? live : counted ?? (perAgent.size > 0 ? 0 : null);
      }
      if (buffered === null) buffered = bufferedRequests(samples, config.statsdPrefix, onlyPool ? null : currentPool);
    } catch (error) {
      chartNote.textContent = `Cannot read /metrics: ${error.message}`;
    }
    set("tokens-per-second", tps === null ? "–" : tps.toFixed(1));
    chart.push(Date.now(), { tps, queue: buffered });
  };
  poll();
  setInterval(poll, METRICS_PERIOD_MS);
}
