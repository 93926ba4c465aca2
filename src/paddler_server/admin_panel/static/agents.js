// Rendering of AgentControllerSnapshot records (spec §2.4), shared by dashboard and model page.

import { formatBytes, h, openDialog } from "./dom.js";

const STATUS_TEXT = {
  Applied: "ready",
  Fresh: "applying state…",
  AttemptedAndRetrying: "retrying",
  AttemptedAndNotAppliable: "cannot apply",
  Stuck: "stuck",
};

const STATUS_TONE = {
  Applied: "ok",
  Fresh: "busy",
  AttemptedAndRetrying: "warn",
  AttemptedAndNotAppliable: "bad",
  Stuck: "bad",
};

const ISSUE_HINTS = {
  ModelFileDoesNotExist: "The agent cannot find the model file at this path on its machine.",
  ModelCannotBeLoaded: "llama.cpp refused the file: is it a valid GGUF for this build?",
  UnableToFindChatTemplate: "The model has no chat template; provide an override on the Model page.",
  ChatTemplateDoesNotCompile: "The chat template has a Jinja error; fix it on the Model page.",
  SlotCannotStart: "A slot could not start: lower --slots or the context size.",
  HuggingFaceModelDoesNotExist: "No such repository, revision or file on Hugging Face.",
  HuggingFacePermissions: "Hugging Face denied access; the repository may be gated or private.",
  DownloadServerIsUnreachable: "The download server did not answer; the agent keeps retrying.",
  DownloadServerDeniedAccess: "The download server answered 401/403.",
  ModelDoesNotExistAtUrl: "The download server answered 404.",
  DownloadUrlIsMalformed: "The model URL cannot be parsed.",
  CacheDirectoryIsNotWritable: "The agent's cache directory is not writable.",
  CacheStorageIsFull: "The agent's disk is full.",
  MultimodalProjectionCannotBeLoaded: "The multimodal projection file could not be loaded.",
  EngineWorkerCrashed: "llama.cpp crashed the agent's engine worker; the agent restarted it and serves on.",
  ExtraBufferTypesDisabled: "llama.cpp's optional CPU kernels (AMX, repacking) crashed on this machine; the agent runs without them (as with --no-repack).",
};

/** Issues that say how an agent runs rather than what is wrong: a tag, not the red badge. */
const NOTICES = { ExtraBufferTypesDisabled: "no extra CPU kernels" };

/** Split an externally tagged AgentIssue into its variant name and payload. */
export function issueParts(issue) {
  if (typeof issue === "string") return [issue, null];
  const [name] = Object.keys(issue);
  return [name, issue[name]];
}

function issueDetails(issue) {
  const [name, payload] = issueParts(issue);
  const fields = payload && typeof payload === "object" ? Object.entries(payload) : payload !== null ? [["value", payload]] : [];
  return h("article", { class: "issue" },
    h("h3", {}, name),
    ISSUE_HINTS[name] ? h("p", { class: "muted" }, ISSUE_HINTS[name]) : null,
    fields.length ? h("dl", {}, fields.map(([key, value]) => [
      h("dt", {}, key),
      h("dd", {}, h("pre", {}, typeof value === "string" ? value : JSON.stringify(value, null, 2))),
    ])) : null);
}

export function showIssues(agent) {
  openDialog(`Issues of ${agent.name ?? agent.id}`, agent.issues.map(issueDetails));
}

function downloadBar(agent) {
  const downloading = agent.download_filename !== null || agent.download_current > 0;
  if (!downloading) return null;
  const known = !agent.download_indeterminate && agent.download_total > 0;
  const label = known
    ? `${formatBytes(agent.download_current)} of ${formatBytes(agent.download_total)}`
    : `${formatBytes(agent.download_current)} (size unknown)`;
  return h("div", { class: "download" },
    h("div", { class: "download-label" },
      h("span", {}, `Downloading ${agent.download_filename ?? "model"}`), h("span", {}, label)),
    known
      ? h("progress", { max: agent.download_total, value: agent.download_current })
      : h("progress", { class: "indeterminate" }));
}

function slotMeter(agent) {
  const dots = [];
  const shown = Math.max(agent.slots_total, agent.desired_slots_total);
  for (let i = 0; i < Math.min(shown, 32); i += 1) {
    const kind = i < agent.slots_processing ? "busy" : i < agent.slots_total ? "free" : "pending";
    dots.push(h("span", { class: `slot ${kind}` }));
  }
  return h("div", { class: "slots" },
    h("span", { class: "slot-dots", "aria-hidden": "true" }, dots),
    h("span", { class: "slot-text", dataset: { role: "slots" } },
      `${agent.slots_processing} busy / ${agent.slots_total} total`,
      h("span", { class: "muted" }, ` (desired ${agent.desired_slots_total})`)),
    h("span", { class: "agent-tps muted", dataset: { role: "agent-tps" } }));
}

function basename(path) { return path.split(/[\\/]/).at(-1); }
function dirname(path) { return path.slice(0, path.length - basename(path).length); }

/** One agent as a card; `data-agent-id` lets the page and the tests find it. */
export function agentCard(agent) {
  const all = agent.issues ?? [];
  const issues = all.filter((issue) => !(issueParts(issue)[0] in NOTICES));
  const notices = all.filter((issue) => issueParts(issue)[0] in NOTICES);
  const status = agent.state_application_status;
  return h("article", { class: "agent", dataset: { agentId: agent.id, status } },
    h("header", {},
      h("h3", { class: "agent-name", title: agent.id }, agent.name ?? h("span", { class: "muted" }, agent.id)),
      h("span", { class: `pill ${STATUS_TONE[status] ?? ""}`, title: status }, STATUS_TEXT[status] ?? status),
      issues.length
        ? h("button", { type: "button", class: "badge bad", onclick: () => showIssues(agent) },
          `${issues.length} issue${issues.length > 1 ? "s" : ""}`)
        : null),
    slotMeter(agent),
    h("div", { class: "model-path", title: agent.model_path ?? "", dataset: { role: "model-path" } },
      agent.model_path
        ? [h("code", {}, basename(agent.model_path)), h("span", { class: "muted dir" }, dirname(agent.model_path))]
        : h("span", { class: "muted" }, "no model loaded"),
      agent.uses_chat_template_override ? h("span", { class: "tag" }, "template override") : null,
      notices.map((notice) => {
        const [name, payload] = issueParts(notice);
        return h("span", { class: "tag", title: `${ISSUE_HINTS[name] ?? name} ${payload?.error ?? ""}`, dataset: { role: "notice" } }, NOTICES[name]);
      })),
    downloadBar(agent));
}

/** Render a list of agents into `container`, sorted by name for a stable layout. */
export function renderAgents(container, agents) {
  const sorted = [...agents].sort((a, b) => (a.name ?? a.id).localeCompare(b.name ?? b.id));
  container.replaceChildren(...(sorted.length
    ? sorted.map(agentCard)
    : [h("p", { class: "empty" }, "No agents connected. Start one with the command in “Add an agent”.")]));
}
