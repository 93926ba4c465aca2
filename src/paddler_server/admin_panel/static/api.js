// How the panel reaches the balancer: the addresses come from the HTML shell's data-*.

import { authHeaders, requireLogin } from "./auth.js";

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
  tls: root.dataset.tls === "true",
  agentToken: root.dataset.agentToken === "true",
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

const secure = config.tls ? "s" : "";
export const managementBase = `http${secure}://${browserAddr(config.managementAddr)}`;
export const inferenceBase = `http${secure}://${browserAddr(config.inferenceAddr)}`;
export const inferenceSocketUrl = `ws${secure}://${browserAddr(config.inferenceAddr)}/api/v1/inference_socket`;

export class HttpError extends Error {
  constructor(status, body) {
    super(`HTTP ${status}${body ? `: ${body}` : ""}`);
    this.status = status;
    this.body = body;
  }
}

async function check(response) {
  if (response.status === 401) requireLogin();
  if (!response.ok) throw new HttpError(response.status, (await response.text()).trim());
  return response;
}

/** fetch() on the management service, with the key when one was given. */
function managementFetch(path, init = {}) {
  return fetch(managementBase + path, { ...init, headers: { ...authHeaders(), ...(init.headers ?? {}) } });
}

export async function getJson(path) {
  const response = await check(await managementFetch(path, { headers: { Accept: "application/json" } }));
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export async function getText(path) {
  return (await check(await managementFetch(path))).text();
}

export async function putJson(path, value) {
  await check(await managementFetch(path, {
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
 * "disconnected". Read with fetch (not EventSource) so that it can send the management key;
 * a 401 shows the login prompt and stops retrying.
 */
export class LiveStream {
  constructor(path, onMessage, onState = () => {}) {
    this.path = path;
    this.onMessage = onMessage;
    this.onState = onState;
    this.state = "connecting";
    this.delay = 500;
    this.controller = null;
    this.key = Symbol(path);
    this.open();
  }

  setState(state) {
    this.state = state;
    this.onState(state);
    reportConnection(this.key, state);
  }

  async open() {
    this.setState("connecting");
    const controller = new AbortController();
    this.controller = controller;
    try {
      const response = await managementFetch(this.path, {
        headers: { Accept: "text/event-stream" }, cache: "no-store", signal: controller.signal,
      });
      if (response.status === 401) {
        this.setState("disconnected");
        requireLogin();
        return;
      }
      if (!response.ok || !response.body) throw new HttpError(response.status, "");
      this.delay = 500;
      this.setState("live");
      await this.read(response.body.pipeThrough(new TextDecoderStream()).getReader());
    } catch {
      // network error, a dropped stream or close(): retry unless closed
    }
    if (this.controller !== controller) return;
    this.setState("disconnected");
    this.timer = setTimeout(() => this.open(), this.delay);
    this.delay = Math.min(this.delay * 2, 5000);
  }

  /** Parse the event stream: `data:` lines up to a blank line make one event. */
  async read(reader) {
    let buffer = "";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
        if (line === "") {
          if (data.length) this.deliver(data.join("\n"));
          data = [];
        } else if (line.startsWith("data:")) {
          data.push(line.slice(5).replace(/^ /, ""));
        }
      }
    }
  }

  deliver(text) {
    if (this.state !== "live") this.setState("live");
    try {
      this.onMessage(JSON.parse(text));
    } catch (error) {
      console.error("live stream message failed", error);
    }
  }

  close() {
    clearTimeout(this.timer);
    const controller = this.controller;
    this.controller = null;
    controller?.abort();
    reportConnection(this.key, null);
  }
}
