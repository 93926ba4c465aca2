// The BalancerDesiredState document (spec §5.1): model URIs, parameters, validation.
// Pure functions, no DOM: the model page and the dashboard both use them.

export const KV_CACHE_DTYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "IQ4_NL", "Q5_0", "Q5_1"];
export const POOLING_TYPES = ["Unspecified", "None", "Mean", "Cls", "Last", "Rank"];

const I32_MAX = 2 ** 31 - 1;
const U32_MAX = 2 ** 32 - 1;

/** Every inference parameter, its default and what it does, in the order shown. */
export const PARAMETERS = [
  { key: "context_size", group: "Context", type: "int", default: 8192, min: 1, max: U32_MAX, help: "Tokens in the one KV cache all slots share (llama.cpp n_ctx). Each slot gets a share of it." },
  { key: "n_batch", group: "Context", type: "int", default: 2048, min: 1, max: U32_MAX, help: "Most tokens per decode pass; also the largest embedding document and image chunk." },
  { key: "n_gpu_layers", group: "Context", type: "int", default: 0, min: -1, max: I32_MAX, help: "Layers offloaded to the GPU: 0 = CPU only, -1 = all layers." },
  { key: "k_cache_dtype", group: "Context", type: "select", options: KV_CACHE_DTYPES, default: "Q8_0", help: "Data type of the K cache; smaller types save memory at some quality cost." },
  { key: "v_cache_dtype", group: "Context", type: "select", options: KV_CACHE_DTYPES, default: "Q8_0", help: "Data type of the V cache." },
  { key: "temperature", group: "Sampling", type: "float", default: 0.8, min: 0, max: 100, help: "Randomness of sampling; 0 always picks the most likely token." },
  { key: "top_k", group: "Sampling", type: "int", default: 80, min: 0, max: I32_MAX, help: "Sample only among the k most likely tokens (0 = no limit)." },
  { key: "top_p", group: "Sampling", type: "float", default: 0.8, min: 0, max: 1, help: "Nucleus sampling: keep the smallest set of tokens whose probability adds up to p." },
  { key: "min_p", group: "Sampling", type: "float", default: 0.05, min: 0, max: 1, help: "Drop tokens less likely than min_p times the most likely one." },
  { key: "penalty_repeat", group: "Penalties", type: "float", default: 1.1, min: 0, max: 100, help: "Multiplicative penalty on repeated tokens; 1.0 = off." },
  { key: "penalty_frequency", group: "Penalties", type: "float", default: 0.0, min: -100, max: 100, help: "Penalty growing with how often a token already appeared; 0 = off." },
  { key: "penalty_presence", group: "Penalties", type: "float", default: 0.8, min: -100, max: 100, help: "Flat penalty on any token that already appeared; 0 = off." },
  { key: "penalty_last_n", group: "Penalties", type: "int", default: -1, min: -1, max: I32_MAX, help: "How many recent tokens the penalties look at: -1 = whole context, 0 = off." },
  { key: "enable_embeddings", group: "Embeddings", type: "bool", default: false, help: "Embeddings mode: agents compute embeddings and token generation is switched off cluster-wide." },
  { key: "pooling_type", group: "Embeddings", type: "select", options: POOLING_TYPES, default: "Last", help: "How token vectors are pooled into one embedding per document." },
  { key: "embedding_batch_size", group: "Embeddings", type: "int", default: 256, min: 1, max: U32_MAX, help: "Most documents per chunk when the balancer splits an embedding batch across agents." },
  { key: "image_resize_to_fit", group: "Images", type: "int", default: 1024, min: 1, max: U32_MAX, help: "Images are scaled down so their longest side is at most this many pixels." },
];

export function defaultParameters() {
  return Object.fromEntries(PARAMETERS.map((p) => [p.key, p.default]));
}

const HF = /^https:\/\/huggingface\.co\/([^/?#]+)\/([^/?#]+)\/(?:blob|resolve)\/([^/?#]+)\/([^?#]+)(?:[?#].*)?$/;

/**
 * Turn what the operator typed into an AgentDesiredModel (externally tagged).
 * Returns {model} or {error: "message for the field"}.
 */
export function parseModelUri(text) {
  const uri = text.trim();
  if (uri === "") return { model: "None" };
  const hf = HF.exec(uri);
  if (hf) {
    return { model: { HuggingFace: { repo_id: `${hf[1]}/${hf[2]}`, revision: hf[3], filename: decodeURIComponent(hf[4]) } } };
  }
  if (uri.startsWith("agent:")) {
    if (!uri.startsWith("agent://")) return { error: "Write agent:///absolute/path/to/model.gguf (three slashes)." };
    const path = uri.slice("agent://".length);
    if (!path.startsWith("/")) {
      return { error: `The path must be absolute: agent:///${path} (agent:// followed by a path starting with /).` };
    }
    if (path.length < 2) return { error: "Give the path of the model file on the agent's machine." };
    return { model: { LocalToAgent: decodeURI(path) } };
  }
  if (/^https?:/i.test(uri)) {
    let url;
    try { url = new URL(uri); } catch { return { error: "This URL cannot be parsed." }; }
    if (!url.hostname) return { error: "This URL has no host." };
    if (url.hostname === "huggingface.co") {
      return { error: "Hugging Face URLs look like https://huggingface.co/<owner>/<repo>/blob/<revision>/<file>.gguf" };
    }
    return { model: { Url: { url: uri } } };
  }
  return { error: "Use a Hugging Face file URL, agent:///absolute/path.gguf, or an http(s) URL. Leave empty for no model." };
}

/** The inverse of parseModelUri, to show a stored model in the form. */
export function modelToUri(model) {
  if (model === "None" || model === null || model === undefined) return "";
  if (model.HuggingFace) {
    const { repo_id, revision, filename } = model.HuggingFace;
    return `https://huggingface.co/${repo_id}/blob/${revision}/${filename}`;
  }
  if (model.LocalToAgent !== undefined) return `agent://${model.LocalToAgent}`;
  if (model.Url) return model.Url.url;
  return JSON.stringify(model);
}

/** A one-line human description of an AgentDesiredModel (`short`: file names only). */
export function describeModel(model, { short = false } = {}) {
  if (model === "None" || !model) return "none";
  if (model.HuggingFace) return `Hugging Face ${model.HuggingFace.repo_id} @ ${model.HuggingFace.revision} · ${model.HuggingFace.filename}`;
  if (model.LocalToAgent !== undefined) {
    return `agent file ${short ? model.LocalToAgent.split("/").at(-1) : model.LocalToAgent}`;
  }
  if (model.Url) return `download ${model.Url.url}`;
  return JSON.stringify(model);
}

/**
 * Check one parameter's raw input (a string for numbers, boolean for checkboxes).
 * Returns {value} or {error}.
 */
export function parseParameter(spec, raw) {
  if (spec.type === "bool") return { value: Boolean(raw) };
  if (spec.type === "select") {
    return spec.options.includes(raw) ? { value: raw } : { error: `Choose one of ${spec.options.join(", ")}.` };
  }
  const text = String(raw).trim();
  if (text === "") return { error: "Required." };
  if (spec.type === "int" && !/^[-+]?\d+$/.test(text)) return { error: "Must be a whole number." };
  const number = Number(text);
  if (!Number.isFinite(number)) return { error: "Must be a number, like 0.8." };
  if (number < spec.min || number > spec.max) {
    const max = spec.max >= U32_MAX - 1 || spec.max >= I32_MAX ? null : spec.max;
    return { error: max === null ? `Must be at least ${spec.min}.` : `Must be between ${spec.min} and ${max}.` };
  }
  return { value: number };
}
