// Model page: edit the chosen pool's desired state (pools.js), PUT it, then watch the pool's
// agents swap.

import { renderAgents } from "./agents.js";
import { getJson, HttpError, LiveStream, putJson } from "./api.js";
import { h, openDialog, replace } from "./dom.js";
import { currentPool, DEFAULT_POOL, desiredStatePath, poolPath } from "./pools.js";
import { defaultParameters, describeModel, modelToUri, PARAMETERS, parseModelUri, parseParameter } from "./desired_state.js";

const STATE_PATH = desiredStatePath();
const TARGET = currentPool === DEFAULT_POOL ? "cluster" : `pool ${currentPool}`;

function fieldId(key) { return `field-${key.replaceAll("_", "-")}`; }

function errorSlot(key) {
  return h("p", { class: "field-error", id: `${fieldId(key)}-error`, role: "alert", hidden: true });
}

function parameterField(spec) {
  const id = fieldId(spec.key);
  let input;
  if (spec.type === "bool") {
    input = h("input", { type: "checkbox", id, name: spec.key });
  } else if (spec.type === "select") {
    input = h("select", { id, name: spec.key }, spec.options.map((o) => h("option", { value: o }, o)));
  } else {
    // type=text with inputmode keeps what was typed, so bad input can be explained.
    input = h("input", { type: "text", inputmode: spec.type === "int" ? "numeric" : "decimal", id, name: spec.key, autocomplete: "off", "aria-describedby": `${id}-help ${id}-error` });
  }
  const reset = h("button", { type: "button", class: "link", title: "Back to the default", onclick: () => { setValue(input, spec, spec.default); input.dispatchEvent(new Event("input")); } },
    `default: ${spec.default}`);
  return h("div", { class: `field field-${spec.type}`, dataset: { key: spec.key } },
    spec.type === "bool"
      ? h("label", { for: id, class: "check" }, input, h("code", {}, spec.key))
      : [h("label", { for: id }, h("code", {}, spec.key)), input],
    h("p", { class: "help", id: `${id}-help` }, spec.help, " ", reset),
    errorSlot(spec.key));
}

function setValue(input, spec, value) {
  if (spec.type === "bool") input.checked = Boolean(value);
  else input.value = String(value);
}

function readValue(input, spec) {
  return spec.type === "bool" ? input.checked : input.value;
}

function showError(form, key, message) {
  const slot = form.querySelector(`#${fieldId(key)}-error`);
  const input = form.querySelector(`#${fieldId(key)}`);
  slot.hidden = !message;
  slot.textContent = message ?? "";
  if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
}

function metadataTable(metadata) {
  const filter = h("input", { type: "search", placeholder: "Filter keys…", "aria-label": "Filter keys" });
  const body = h("tbody");
  const render = () => {
    const needle = filter.value.toLowerCase();
    replace(body, Object.entries(metadata).sort(([a], [b]) => a.localeCompare(b))
      .filter(([key]) => key.toLowerCase().includes(needle))
      .map(([key, value]) => h("tr", {}, h("th", {}, h("code", {}, key)),
        h("td", {}, value.length > 400 ? `${value.slice(0, 400)}… (${value.length} characters)` : value))));
  };
  filter.addEventListener("input", render);
  render();
  return [filter, h("table", { class: "metadata" }, body)];
}

export function mountModel(view) {
  const modelInput = h("input", { type: "text", id: fieldId("model"), name: "model", autocomplete: "off", spellcheck: false, placeholder: "https://huggingface.co/owner/repo/blob/main/model.gguf  ·  agent:///models/model.gguf  ·  https://host/model.gguf" });
  const mmprojInput = h("input", { type: "text", id: fieldId("multimodal_projection"), name: "multimodal_projection", autocomplete: "off", spellcheck: false, placeholder: "optional: the multimodal projection (mmproj) GGUF, same forms" });
  const modelPreview = h("p", { class: "parsed muted", dataset: { role: "model-parsed" } });
  const mmprojPreview = h("p", { class: "parsed muted" });
  const paramInputs = {};
  const groups = [...new Set(PARAMETERS.map((p) => p.group))];

  const useOwn = h("input", { type: "radio", name: "template_choice", value: "model", id: "template-model", checked: true });
  const useOverride = h("input", { type: "radio", name: "template_choice", value: "override", id: "template-override" });
  const templateEditor = h("textarea", { id: fieldId("chat_template_override"), name: "chat_template_override", rows: 12, spellcheck: false, class: "code", placeholder: "{% for message in messages %}…{% endfor %}" });
  const agentSelect = h("select", { "aria-label": "Agent to ask", id: "preview-agent" });
  const formError = h("div", { class: "form-error", role: "alert", hidden: true, dataset: { role: "form-error" } });
  const submitStatus = h("span", { class: "muted", dataset: { role: "submit-status" } });
  const submit = h("button", { type: "submit", class: "primary" }, `Apply to ${TARGET}`);
  const progress = h("section", { class: "card", hidden: true, id: "swap-progress" },
    h("h2", {}, "Swap progress"),
    h("p", { class: "muted", dataset: { role: "swap-summary" } }),
    h("div", { class: "agents" }));

  templateEditor.addEventListener("keydown", (event) => {
    if (event.key !== "Tab" || event.shiftKey) return;
    event.preventDefault();
    templateEditor.setRangeText("  ", templateEditor.selectionStart, templateEditor.selectionEnd, "end");
  });
  const syncTemplate = () => { templateEditor.closest(".template-editor").classList.toggle("inactive", !useOverride.checked); };

  const form = h("form", { class: "model-form", novalidate: true },
    h("section", { class: "card" },
      h("h2", {}, "Model"),
      h("div", { class: "field wide" },
        h("label", { for: modelInput.id }, "Model file"), modelInput,
        h("p", { class: "help" }, "A Hugging Face file URL (…/blob/<revision>/<file> or …/resolve/…), agent:///absolute/path.gguf for a file already on every agent, or any http(s) URL to download. Empty = no model."),
        modelPreview, errorSlot("model")),
      h("div", { class: "field wide" },
        h("label", { for: mmprojInput.id }, "Multimodal projection"), mmprojInput, mmprojPreview, errorSlot("multimodal_projection"))),
    h("section", { class: "card" },
      h("h2", {}, "Inference parameters"),
      groups.map((group) => h("fieldset", { class: "param-group" },
        h("legend", {}, group),
        PARAMETERS.filter((p) => p.group === group).map((spec) => {
          const field = parameterField(spec);
          paramInputs[spec.key] = field.querySelector(`#${fieldId(spec.key)}`);
          return field;
        })))),
    h("section", { class: "card" },
      h("h2", {}, "Chat template"),
      h("div", { class: "radio-row", onchange: syncTemplate },
        h("label", { for: useOwn.id }, useOwn, " Use the model's own template"),
        h("label", { for: useOverride.id }, useOverride, " Use my template")),
      h("div", { class: "template-editor" },
        templateEditor, errorSlot("chat_template_override"),
        h("p", { class: "help" }, "Jinja, as in the GGUF's tokenizer.chat_template. Kept with the state even while the model's own template is used.")),
      h("div", { class: "preview-row" },
        h("label", {}, "Preview from agent ", agentSelect),
        h("button", { type: "button", class: "secondary", onclick: () => previewMetadata() }, "Model metadata"),
        h("button", { type: "button", class: "secondary", onclick: () => previewTemplate() }, "Model's template"),
        h("button", { type: "button", class: "secondary", onclick: () => previewOverride() }, "Agent's override"))),
    h("div", { class: "submit-bar" }, submit,
      h("button", { type: "button", class: "secondary", onclick: () => fill({ ...current, inference_parameters: defaultParameters() }) }, "Reset parameters to defaults"),
      submitStatus, formError));

  replace(view, h("h1", {}, "Model and parameters", currentPool === DEFAULT_POOL ? null : h("span", { class: "muted", dataset: { role: "pool-name" } }, ` · pool ${currentPool}`)), form, progress);

  let current = null;
  const livePreview = (input, preview, key) => () => {
    const parsed = parseModelUri(input.value);
    preview.textContent = parsed.error ? "" : `→ ${describeModel(parsed.model)}`;
    if (!parsed.error) showError(form, key, null);
  };
  modelInput.addEventListener("input", livePreview(modelInput, modelPreview, "model"));
  mmprojInput.addEventListener("input", livePreview(mmprojInput, mmprojPreview, "multimodal_projection"));
  for (const spec of PARAMETERS) {
    paramInputs[spec.key].addEventListener("input", () => {
      const { error } = parseParameter(spec, readValue(paramInputs[spec.key], spec));
      if (!error) showError(form, spec.key, null);
    });
  }

  function fill(state) {
    current = state;
    modelInput.value = modelToUri(state.model);
    mmprojInput.value = modelToUri(state.multimodal_projection);
    for (const spec of PARAMETERS) setValue(paramInputs[spec.key], spec, state.inference_parameters[spec.key] ?? spec.default);
    templateEditor.value = state.chat_template_override?.content ?? "";
    useOverride.checked = Boolean(state.use_chat_template_override);
    useOwn.checked = !useOverride.checked;
    syncTemplate();
    modelInput.dispatchEvent(new Event("input"));
    mmprojInput.dispatchEvent(new Event("input"));
    for (const spec of PARAMETERS) showError(form, spec.key, null);
  }

  /** Build the full BalancerDesiredState, or report every problem next to its field. */
  function collect() {
    const errors = {};
    const model = parseModelUri(modelInput.value);
    if (model.error) errors.model = model.error;
    const mmproj = parseModelUri(mmprojInput.value);
    if (mmproj.error) errors.multimodal_projection = mmproj.error;
    const inference_parameters = {};
    for (const spec of PARAMETERS) {
      const parsed = parseParameter(spec, readValue(paramInputs[spec.key], spec));
      if (parsed.error) errors[spec.key] = parsed.error;
      else inference_parameters[spec.key] = parsed.value;
    }
    const content = templateEditor.value;
    if (useOverride.checked && content.trim() === "") errors.chat_template_override = "Write a template, or choose the model's own.";
    for (const key of ["model", "multimodal_projection", "chat_template_override", ...PARAMETERS.map((p) => p.key)]) {
      showError(form, key, errors[key] ?? null);
    }
    if (Object.keys(errors).length) return { errors };
    return {
      state: {
        chat_template_override: content.trim() === "" ? null : { content },
        inference_parameters,
        model: model.model,
        multimodal_projection: mmproj.model,
        use_chat_template_override: useOverride.checked,
      },
    };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.hidden = true;
    const { state, errors } = collect();
    if (errors) {
      const count = Object.keys(errors).length;
      submitStatus.textContent = `Nothing was sent: ${count} field${count > 1 ? "s need" : " needs"} fixing.`;
      form.querySelector("[aria-invalid=true]")?.focus();
      return;
    }
    submit.disabled = true;
    submitStatus.textContent = "Sending…";
    try {
      await putJson(STATE_PATH, state);
      current = state;
      submitStatus.textContent = "Applied. Agents drain their requests, then load the new state.";
      watchSwap();
    } catch (error) {
      submitStatus.textContent = "";
      formError.hidden = false;
      formError.textContent = error instanceof HttpError && error.status === 400
        ? `The balancer refused this state: ${error.body || "bad request"}`
        : `Could not apply the state: ${error.message}`;
    } finally {
      submit.disabled = false;
    }
  });

  let swapStream = null;
  let swap = null; // {since, reloading: ids of agents seen draining or loading since the PUT}
  let swapAgents = [];
  function updateSwap() {
    const summary = progress.querySelector("[data-role=swap-summary]");
    const now = performance.now();
    for (const a of swapAgents) {
      if (a.state_application_status !== "Applied" || a.slots_total === 0) swap.reloading.add(a.id);
    }
    // An agent seen reloading and ready again has the new state. One never seen reloading
    // may have swapped between two snapshots; after a few seconds of "ready", trust it.
    const done = swapAgents.filter((a) => a.state_application_status === "Applied"
      && (swap.reloading.has(a.id) || now - swap.since > 5000)).length;
    const n = swapAgents.length;
    summary.textContent = n === 0
      ? "No agents are connected; the state applies when one joins."
      : `${done} of ${n} agent${n > 1 ? "s" : ""} applied the new state.`;
  }

  function watchSwap() {
    progress.hidden = false;
    swap = { since: performance.now(), reloading: new Set() };
    if (swapStream) { updateSwap(); return; }
    const list = progress.querySelector(".agents");
    swapStream = new LiveStream(poolPath("agents/stream"), (snapshot) => {
      swapAgents = snapshot.agents ?? [];
      renderAgents(list, swapAgents);
      updateSwap();
    });
    setInterval(updateSwap, 1000);
  }

  // ---- previews from an agent ---------------------------------------------------------
  async function refreshAgents() {
    try {
      const { agents } = await getJson(poolPath("agents"));
      const options = agents.map((a) => h("option", { value: a.id }, `${a.name ?? a.id}${a.model_path ? "" : " (no model)"}`));
      replace(agentSelect, options.length ? options : h("option", { value: "" }, "no agents"));
      const loaded = agents.find((a) => a.model_path);
      if (loaded) agentSelect.value = loaded.id;
    } catch {
      replace(agentSelect, h("option", { value: "" }, "unavailable"));
    }
  }

  async function askAgent(path) {
    if (!agentSelect.value) { openDialog("No agent", h("p", {}, "Connect an agent to preview its model.")); return undefined; }
    try {
      return await getJson(`/api/v1/agent/${encodeURIComponent(agentSelect.value)}/${path}`);
    } catch (error) {
      openDialog("Cannot ask the agent", h("p", { class: "error" }, error.message));
      return undefined;
    }
  }

  async function previewMetadata() {
    const result = await askAgent("model_metadata");
    if (result === undefined) return;
    if (result === null) { openDialog("Model metadata", h("p", {}, "This agent has no model loaded.")); return; }
    openDialog("Model metadata", ...metadataTable(result.metadata));
  }

  async function previewTemplate() {
    const result = await askAgent("model_metadata");
    if (result === undefined) return;
    const template = result?.metadata?.["tokenizer.chat_template"];
    openDialog("The model's chat template",
      template ? h("pre", { class: "code" }, template) : h("p", {}, "The loaded model has no tokenizer.chat_template."),
      template ? h("button", { type: "button", class: "secondary", onclick: (event) => { templateEditor.value = template; useOverride.checked = true; syncTemplate(); event.target.closest("dialog").close(); } }, "Copy into my template") : null);
  }

  async function previewOverride() {
    const result = await askAgent("chat_template_override");
    if (result === undefined) return;
    openDialog("The agent's template override", result ? h("pre", { class: "code" }, result.content) : h("p", {}, "This agent uses the model's own template."));
  }

  refreshAgents();
  getJson(STATE_PATH).then(fill, (error) => {
    if (error instanceof HttpError && error.status === 404 && currentPool !== DEFAULT_POOL) {
      submitStatus.textContent = `There is no pool ${currentPool} yet: applying a state creates it.`;
    } else {
      formError.hidden = false;
      formError.textContent = `Cannot load the current desired state: ${error.message}`;
    }
    fill({ model: "None", multimodal_projection: "None", chat_template_override: null, use_chat_template_override: false, inference_parameters: defaultParameters() });
  });
}
