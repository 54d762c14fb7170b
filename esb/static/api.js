// The key of this browser session, calls to the admin API, and the one way text reaches the page.
//
// The key is kept in sessionStorage: entered once per browser session, gone when the tab closes,
// sent in the Authorization header only, never in a URL. Everything shown that came from the bus
// (bodies, headers, errors, names) is set as textContent, never as HTML.
const KEY_ITEM = "esb-key";

export const session = {key: sessionStorage.getItem(KEY_ITEM) || "", admin: false};

export function remember(key) {
  session.key = key;
  sessionStorage.setItem(KEY_ITEM, key);
}

export function forget() {
  session.key = "";
  session.admin = false;
  sessionStorage.removeItem(KEY_ITEM);
}

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export async function api(path, options = {}) {
  const headers = Object.assign({"Authorization": "Bearer " + session.key}, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, {headers}));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(body.message || response.statusText, response.status);
  return body;
}

export function post(path, body) {
  return api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
}

export function routePath(route) {
  return `/api/routes/${encodeURIComponent(route)}`;
}

// An element with `text` as its text (never parsed as HTML).
export function element(tag, text, className) {
  const made = document.createElement(tag);
  if (text !== undefined && text !== null) made.textContent = String(text);
  if (className) made.className = className;
  return made;
}

export function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (className) td.className = className;
  return td;
}

export function button(text, className, onClick) {
  const made = element("button", text, className);
  made.type = "button";
  made.addEventListener("click", onClick);
  return made;
}

export function say(text) {
  document.querySelector("#message").textContent = text;
}

export function showAdminParts() {
  document.querySelectorAll(".admin-only").forEach((e) => { e.hidden = !session.admin; });
}
