// Prompt page: a chat over the inference WebSocket (spec §2.2), streaming and stoppable.

import { inferenceBase, inferenceSocketUrl, reportConnection } from "./api.js";
import { apiKey, setApiKey } from "./auth.js";
import { formatBytes, h, replace } from "./dom.js";
import { currentPool, DEFAULT_POOL } from "./pools.js";

/** The pool the chat goes to, offered as a subprotocol; a ':' is no subprotocol character. */
const socketPool = currentPool !== DEFAULT_POOL && !currentPool.includes(":") ? currentPool : null;

const STREAMING = new Set(["ContentToken", "ReasoningToken", "UndeterminableToken", "ToolCallToken",
  "ToolCallParsed", "ToolCallParseFailed", "ToolCallValidationFailed", "UnrecognizedToolCallFormat"]);

/**
 * The inference socket, reconnecting after a drop; dispatches frames to listeners. With an
 * API key it offers the subprotocols `paddler` and `paddler.bearer.<key>`, and for a pool
 * other than default `paddler.pool.<name>` (a browser cannot set headers on a WebSocket; a
 * key in the URL would be logged). A socket refused before it opens calls `onRefused`.
 */
class InferenceSocket {
  constructor({ onMessage, onState, onRefused }) {
    this.onMessage = onMessage;
    this.onState = onState;
    this.onRefused = onRefused;
    this.delay = 500;
    this.connect();
  }

  connect() {
    this.onState("connecting");
    const key = apiKey();
    const offers = [key ? `paddler.bearer.${key}` : null, socketPool ? `paddler.pool.${socketPool}` : null].filter(Boolean);
    const ws = offers.length ? new WebSocket(inferenceSocketUrl, ["paddler", ...offers]) : new WebSocket(inferenceSocketUrl);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => { opened = true; this.delay = 500; this.onState("live"); };
    ws.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      this.onMessage(message);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      if (!opened) this.onRefused();
      this.onState("disconnected");
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
  }

  get open() { return this.ws?.readyState === WebSocket.OPEN; }

  send(message) { this.ws.send(JSON.stringify(message)); }
}

// One image per message, sent inline as a data URI (the agents never fetch URLs). Frames on the
// inference socket are limited (50 MiB by default); base64 makes an image a third bigger.
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp", "image/svg+xml"];
const MAX_IMAGE_BYTES = 20 * 1024 * 1024;

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function usageLine(usage, seconds, firstTokenSeconds, generatedBy) {
  const generated = usage.content_tokens + usage.reasoning_tokens + usage.undeterminable_tokens + usage.tool_call_tokens;
  const promptDetails = [
    usage.cached_prompt_tokens ? `${usage.cached_prompt_tokens} cached` : null,
    usage.input_image_tokens ? `${usage.input_image_tokens} image` : null,
  ].filter(Boolean).join(", ");
  const parts = [
    `${usage.prompt_tokens} prompt tokens${promptDetails ? ` (${promptDetails})` : ""}`,
    `${generated} generated${usage.reasoning_tokens ? ` (${usage.reasoning_tokens} reasoning)` : ""}`,
    seconds > 0 && generated > 1 ? `${(generated / seconds).toFixed(1)} tokens/s` : null,
    firstTokenSeconds !== null ? `first token after ${firstTokenSeconds.toFixed(2)} s` : null,
    generatedBy ? `by ${generatedBy}` : null,
  ];
  return parts.filter(Boolean).join(" · ");
}

export function mountPrompt(view) {
  const notice = h("div", { class: "notice", hidden: true, role: "status", dataset: { role: "generation-disabled" } },
    h("strong", {}, "Token generation is disabled."),
    " The cluster is in embeddings mode; switch off ",
    h("code", {}, "enable_embeddings"), " on the ", h("a", { href: "/model" }, "Model page"), " to chat.");
  const socketState = h("span", { class: "stream-state", dataset: { role: "socket-state" } });
  const log = h("div", { class: "chat-log", id: "chat-log", "aria-live": "polite" },
    h("p", { class: "empty" }, "Ask something. Answers stream from the cluster token by token."));
  const input = h("textarea", { id: "prompt-input", rows: 3, placeholder: "Message (Enter to send, Shift+Enter for a new line)", "aria-label": "Message" });
  const system = h("textarea", { id: "system-prompt", rows: 2, placeholder: "Optional system prompt", "aria-label": "System prompt" });
  const thinking = h("input", { type: "checkbox", id: "enable-thinking" });
  const maxTokens = h("input", { type: "number", id: "max-tokens", value: "256", min: "1", class: "narrow", "aria-label": "Max tokens" });
  const send = h("button", { type: "submit", class: "primary", id: "send" }, "Send");
  const stop = h("button", { type: "button", class: "danger", id: "stop", disabled: true }, "Stop");
  const clear = h("button", { type: "button", class: "secondary" }, "New conversation");
  const imageInput = h("input", { type: "file", id: "image-input", accept: IMAGE_TYPES.join(","), class: "visually-hidden" });
  const attachButton = h("button", { type: "button", class: "secondary", id: "attach-image", title: "Attach one image (PNG, JPEG, GIF, BMP, WebP or SVG); it is sent inline with the message" }, "Image…");
  const attachment = h("div", { class: "attachment", hidden: true, dataset: { role: "attachment" } });

  const composer = h("form", { class: "composer" },
    attachment,
    input,
    h("div", { class: "composer-bar" },
      imageInput, attachButton,
      h("label", { class: "check", title: "Let models that can reason think before answering; the reasoning is shown apart." }, thinking, " Thinking"),
      h("label", {}, "Max tokens ", maxTokens),
      h("span", { class: "spacer" }),
      clear, stop, send));

  const keyMessage = h("p", { dataset: { role: "api-key-message" } });
  const keyInput = h("input", { type: "password", id: "api-key", autocomplete: "off", spellcheck: false, required: true });
  const keyForm = h("form", {
    class: "notice login", hidden: true, dataset: { role: "api-key" },
    onsubmit: (event) => {
      event.preventDefault();
      setApiKey(keyInput.value.trim());
      location.reload();
    },
  },
  keyMessage,
  h("label", { for: "api-key" }, "API key"), keyInput,
  h("p", { class: "muted" }, "Kept in this tab only (session storage); offered to the socket as the subprotocol paddler.bearer.<key>."),
  h("button", { type: "submit" }, "Use this key"));

  replace(view,
    h("h1", {}, "Prompt ", socketState),
    h("p", { class: "muted" }, "Chat with the cluster through ", h("code", {}, inferenceSocketUrl), ".",
      currentPool === DEFAULT_POOL ? null : h("span", { dataset: { role: "prompt-pool" } }, socketPool
        ? ` The chat goes to pool ${socketPool}.`
        : ` The chat goes to the default pool: a browser cannot name pool ${currentPool} on a WebSocket (a ':' is not allowed in a subprotocol).`)),
    keyForm,
    notice,
    h("details", { class: "card system" }, h("summary", {}, "System prompt"), system),
    log, composer);

  let history = [];
  let active = null; // {id, element parts, started, firstToken}
  let generationDisabled = false;
  let attached = null; // {url, name, size}: the image the next message carries

  function showAttachment(content) {
    attachment.hidden = content === null;
    replace(attachment, content);
  }

  function detach() {
    attached = null;
    imageInput.value = "";
    showAttachment(null);
  }

  async function attach(file) {
    if (!file) return;
    if (!IMAGE_TYPES.includes(file.type)) {
      attached = null;
      showAttachment(h("p", { class: "error", role: "alert" }, `${file.name} is not a PNG, JPEG, GIF, BMP, WebP or SVG image.`));
      return;
    }
    if (file.size > MAX_IMAGE_BYTES) {
      attached = null;
      showAttachment(h("p", { class: "error", role: "alert" }, `${file.name} is ${formatBytes(file.size)}; an image may be at most ${formatBytes(MAX_IMAGE_BYTES)}.`));
      return;
    }
    const url = await readAsDataUrl(file);
    attached = { url, name: file.name, size: file.size };
    showAttachment([
      h("img", { src: url, alt: file.name, class: "thumb" }),
      h("span", { class: "attachment-name" }, `${file.name} · ${formatBytes(file.size)}`),
      h("button", { type: "button", class: "secondary small", "aria-label": "Remove the image", onclick: () => { detach(); input.focus(); } }, "Remove"),
    ]);
  }

  let socket = null;
  const refreshButtons = () => {
    send.disabled = Boolean(active) || generationDisabled || !socket?.open;
    stop.disabled = !active;
  };

  socket = new InferenceSocket({
    onState: (state) => {
      reportConnection("inference-socket", state);
      socketState.dataset.state = state;
      socketState.textContent = { live: "", connecting: "connecting…", disconnected: "disconnected — retrying" }[state];
      if (state === "disconnected" && active) finish(active, { error: "The connection to the inference service dropped." });
      refreshButtons();
    },
    onMessage: handle,
    onRefused: checkApiKey,
  });

  // A refused WebSocket says nothing about why; a bodiless POST on the inference API does:
  // 401 means the balancer has --api-key (an open one answers 400 and runs nothing).
  let askedForKey = false;
  async function checkApiKey() {
    if (askedForKey) return;
    const key = apiKey();
    let status;
    try {
      const response = await fetch(`${inferenceBase}/api/v1/continue_from_conversation_history`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...(key ? { Authorization: `Bearer ${key}` } : {}), ...(socketPool ? { "Paddler-Pool": socketPool } : {}) },
        body: "{}",
      });
      status = response.status;
    } catch {
      return; // unreachable: the socket's own retry and state say enough
    }
    if (status !== 401) return;
    askedForKey = true;
    keyMessage.textContent = key
      ? "The inference API refused this API key. Enter one of the balancer's --api-key keys."
      : "This balancer's inference API needs an API key (--api-key). Enter one to chat.";
    keyForm.hidden = false;
    keyInput.focus();
  }

  function handle(message) {
    if (message.Notification !== undefined) {
      if (message.Notification === "TokenGenerationDisabled") generationDisabled = true;
      if (message.Notification === "TokenGenerationEnabled") generationDisabled = false;
      notice.hidden = !generationDisabled;
      refreshButtons();
      return;
    }
    if (message.Error) {
      const { request_id: id, error } = message.Error;
      if (active && active.id === id) finish(active, { error: `Error ${error.code}: ${error.description}` });
      return;
    }
    const response = message.Response;
    if (!response || !active || response.request_id !== active.id) return;
    active.generatedBy = response.generated_by;
    const token = response.response.GeneratedToken;
    if (token === undefined) return;
    const [kind, payload] = typeof token === "string" ? [token, null] : Object.entries(token)[0];
    if (active.firstToken === null) {
      active.firstToken = performance.now();
      if (!active.stopped) active.meta.textContent = "generating…";
    }
    if (kind === "ContentToken" || kind === "UndeterminableToken") {
      active.content += payload;
      active.answer.textContent = active.content;
    } else if (kind === "ReasoningToken") {
      active.reasoningText += payload;
      active.reasoning.hidden = false;
      active.reasoning.querySelector("pre").textContent = active.reasoningText;
    } else if (kind === "ToolCallToken") {
      active.answer.textContent = (active.content += payload);
    } else if (STREAMING.has(kind)) {
      // Tool-call parsing results: not requested by this page; ignore.
    } else if (kind === "Done") {
      finish(active, { usage: payload.usage });
    } else {
      if (kind === "TokenGenerationDisabled") { generationDisabled = true; notice.hidden = false; }
      finish(active, { error: `${kind}: ${typeof payload === "string" ? payload : JSON.stringify(payload)}` });
    }
  }

  function finish(request, { usage, error }) {
    if (active !== request) return;
    active = null;
    const seconds = request.firstToken ? (performance.now() - request.firstToken) / 1000 : 0;
    request.element.classList.remove("streaming");
    request.element.dataset.state = error ? "error" : request.stopped ? "stopped" : "done";
    if (usage) {
      const firstTokenSeconds = request.firstToken ? (request.firstToken - request.sent) / 1000 : null;
      request.meta.textContent = (request.stopped ? "Stopped · " : "")
        + usageLine(usage, seconds, firstTokenSeconds, request.generatedBy);
    } else {
      request.meta.textContent = request.stopped ? "Stopped." : "";
    }
    if (error) request.element.append(h("p", { class: "error", role: "alert" }, error));
    if (request.content) history.push({ role: "assistant", content: request.content });
    else history.pop(); // keep user/assistant alternation: forget the unanswered question
    refreshButtons();
    input.focus();
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    const max = Number(maxTokens.value);
    if ((!text && !attached) || active || !socket.open) return;
    if (!Number.isInteger(max) || max < 1) { maxTokens.setCustomValidity("A whole number ≥ 1"); maxTokens.reportValidity(); return; }
    maxTokens.setCustomValidity("");
    log.querySelector(".empty")?.remove();
    const image = attached;
    const content = image
      ? [...(text ? [{ type: "text", text }] : []), { type: "image_url", image_url: { url: image.url } }]
      : text;
    history.push({ role: "user", content });
    log.append(h("div", { class: "message user" },
      image ? h("img", { src: image.url, alt: image.name, class: "thumb" }) : null,
      text ? h("p", {}, text) : null));
    const answer = h("div", { class: "answer" });
    const reasoning = h("details", { class: "reasoning", open: true, hidden: true }, h("summary", {}, "Reasoning"), h("pre", {}));
    const meta = h("p", { class: "meta muted" }, "waiting for a free slot…");
    const element = h("div", { class: "message assistant streaming", dataset: { state: "streaming" } }, reasoning, answer, meta);
    log.append(element);
    const id = crypto.randomUUID();
    active = { id, element, answer, reasoning, meta, content: "", reasoningText: "", stopped: false, firstToken: null, generatedBy: null, sent: performance.now() };
    const conversation = system.value.trim() ? [{ role: "system", content: system.value.trim() }, ...history] : history;
    socket.send({
      Request: {
        id,
        request: {
          ContinueFromConversationHistory: {
            add_generation_prompt: true,
            conversation_history: conversation,
            enable_thinking: thinking.checked,
            max_tokens: max,
          },
        },
      },
    });
    input.value = "";
    detach();
    refreshButtons();
    element.scrollIntoView({ block: "end" });
  });

  attachButton.addEventListener("click", () => imageInput.click());
  imageInput.addEventListener("change", () => attach(imageInput.files[0]));
  composer.addEventListener("dragover", (event) => { event.preventDefault(); });
  composer.addEventListener("drop", (event) => {
    const file = event.dataTransfer?.files?.[0];
    if (!file) return;
    event.preventDefault();
    attach(file);
  });
  input.addEventListener("paste", (event) => {
    const file = [...(event.clipboardData?.files ?? [])].find((f) => f.type.startsWith("image/"));
    if (!file) return;
    event.preventDefault();
    attach(file);
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });

  stop.addEventListener("click", () => {
    if (!active || !socket.open) return;
    active.stopped = true;
    active.meta.textContent = "Stopping…";
    socket.send({ Notification: { StopRespondingTo: active.id } });
  });

  clear.addEventListener("click", () => {
    if (active) return;
    history = [];
    replace(log, h("p", { class: "empty" }, "New conversation."));
  });

  refreshButtons();
}
