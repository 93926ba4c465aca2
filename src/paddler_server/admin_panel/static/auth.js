// The management API key (--management-api-key): asked for when the management API answers
// 401, kept in this tab's sessionStorage (gone when the tab closes), and sent as
// `Authorization: Bearer` on every request, the live streams included (they are read with
// fetch rather than EventSource, which cannot send headers; the key never goes in a URL).

import { h } from "./dom.js";

const STORAGE_KEY = "paddler.managementApiKey";

export function managementKey() {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled: the key is asked for on every page load
  }
}

const API_KEY = "paddler.apiKey";

/** The inference API key (--api-key) the prompt page sends, if one was given. */
export function apiKey() {
  try {
    return sessionStorage.getItem(API_KEY);
  } catch {
    return null;
  }
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(API_KEY, key);
  else sessionStorage.removeItem(API_KEY);
}

/** Headers that carry the key, if one was given. */
export function authHeaders() {
  const key = managementKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export function logOut() {
  sessionStorage.removeItem(STORAGE_KEY);
  sessionStorage.removeItem(API_KEY);
  location.reload();
}

let prompted = false;

/** Show the login prompt (once per page); submitting stores the key and reloads the page. */
export function requireLogin() {
  if (prompted) return;
  prompted = true;
  const refused = managementKey() !== null;
  const input = h("input", {
    type: "password", id: "management-api-key", name: "management-api-key",
    autocomplete: "current-password", required: true, spellcheck: false,
  });
  const form = h("form", {
    class: "login",
    onsubmit: (event) => {
      event.preventDefault();
      sessionStorage.setItem(STORAGE_KEY, input.value.trim());
      location.reload();
    },
  },
  h("p", { dataset: { role: "login-message" } }, refused
    ? "The balancer refused this key. Enter the key it was started with (--management-api-key)."
    : "This balancer's management API needs a key: the one it was started with (--management-api-key)."),
  h("label", { for: "management-api-key" }, "Management API key"),
  input,
  h("p", { class: "muted" }, "The key stays in this tab only (session storage) and is sent as a bearer header."),
  h("button", { type: "submit" }, "Log in"));
  const dialog = h("dialog", { class: "dialog login-dialog", dataset: { role: "login" } },
    h("header", {}, h("h2", {}, "Log in")),
    h("div", { class: "dialog-body" }, form));
  dialog.addEventListener("cancel", (event) => event.preventDefault()); // nothing works without it
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}

/** A "Log out" button in the top bar while a key is stored. */
export function mountLogOut() {
  if (managementKey() === null && apiKey() === null) return;
  const bar = document.querySelector(".topbar");
  bar?.append(h("button", { type: "button", class: "ghost logout", dataset: { role: "logout" }, onclick: logOut }, "Log out"));
}
