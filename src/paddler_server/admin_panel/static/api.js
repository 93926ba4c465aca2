// How the panel reaches the balancer: the addresses come from the HTML shell's data-*.

const root = document.getElementById("paddler-dashboard");

/** The balancer's settings, exactly as given on its command line. */
export const config = Object.freeze({
  page: root.dataset.page,
  managementAddr: root.dataset.managementAddr,
  inferenceAddr: root.dataset.inferenceAddr,
  compatOpenaiAddr: root.dataset.compatOpenaiAddr || null,
  bufferedRequestTimeoutMs: Number(root.dataset.bufferedRequestTimeoutMillis),
  maxBufferedRequests: Number(root.dataset.maxBufferedRequests),
  statsdAddr: root.dataset.statsdAddr || null,
  statsdPrefix: root.dataset.statsdPrefix,
  statsdReportingIntervalMs: Number(root.dataset.statsdReportingIntervalMillis),
});

/**
 * Where the browser reaches a service given as host:port on the CLI. A wildcard listen
 * address (0.0.0.0, ::) means "every interface", so use the host this page came from.
 */
export function browserAddr(addr) {
  const match = /^(.*):(\d+)$/.exec(addr);
  if (!match) return addr;
  const host = match[1];
  return ["0.0.0.0", "[::]", "::", ""].includes(host) ? `${location.hostname}:${match[2]}` : addr;
}

export const managementBase = `http://${browserAddr(config.managementAddr)}`;
export const inferenceSocketUrl = `ws://${browserAddr(config.inferenceAddr)}/api/v1/inference_socket`;

export class HttpError extends Error {
  constructor(status, body) {
    super(`HTTP ${status}${body ? `: ${body}` : ""}`);
    this.status = status;
    this.body = body;
  }
}

async function check(response) {
  if (!response.ok) throw new HttpError(response.status, (await response.text()).trim());
  return response;
}

export async function getJson(path) {
  const response = await check(await fetch(managementBase + path, { headers: { Accept: "application/json" } }));
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export async function getText(path) {
  return (await check(await fetch(managementBase + path))).text();
}

export async function putJson(path, value) {
  await check(await fetch(managementBase + path, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(value),
  }));
}

// ---- live connection indicator (top bar) --------------------------------------------

const connections = new Map();

/** Report the state ("connecting" | "live" | "disconnected") of one live connection. */
export function reportConnection(key, state) {
  if (state === null) connections.delete(key);
  else connections.set(key, state);
  const el = document.getElementById("connection");
  if (!el) return;
  const states = [...connections.values()];
  const overall = states.length === 0 ? "idle"
    : states.every((s) => s === "live") ? "live"
      : states.some((s) => s === "disconnected") ? "disconnected" : "connecting";
  el.dataset.state = overall;
  el.textContent = { live: "live", disconnected: "disconnected — retrying", connecting: "connecting…", idle: "" }[overall];
}

/**
 * A Server-Sent Events subscription that reconnects with backoff after any error.
 * `onMessage(json)` gets every snapshot; `onState(state)` gets "connecting" | "live" |
 * "disconnected".
 */
export class LiveStream {
  constructor(path, onMessage, onState = () => {}) {
    this.url = managementBase + path;
    this.onMessage = onMessage;
    this.onState = onState;
    this.state = "connecting";
    this.delay = 500;
    this.source = null;
    this.key = Symbol(path);
    this.open();
  }

  setState(state) {
    this.state = state;
    this.onState(state);
    reportConnection(this.key, state);
  }

  open() {
    this.setState("connecting");
    const source = new EventSource(this.url);
    this.source = source;
    source.onopen = () => { this.delay = 500; this.setState("live"); };
    source.onmessage = (event) => {
      if (this.state !== "live") this.setState("live");
      this.onMessage(JSON.parse(event.data));
    };
    source.onerror = () => {
      source.close();
      if (this.source !== source) return;
      this.setState("disconnected");
      this.timer = setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
  }

  close() {
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
    reportConnection(this.key, null);
  }
}
