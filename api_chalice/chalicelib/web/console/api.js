// The API as the console calls it: relative URLs (so the page works at / behind NGINX and at
// /<stage>/ behind API Gateway), the API key from sessionStorage when the deployment needs one, and
// the API's own error message carried in the exception.

const BASE = new URL(".", window.location.href);
const KEY_STORE = "rdc-api-key";

// A 401/403: the page asks for a key instead of showing nothing.
export class KeyNeeded extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export class ApiError extends Error {
  constructor(status, title, message) {
    super(message);
    this.status = status;
    this.title = title;
  }
}

export function apiKey() {
  try {
    return window.sessionStorage.getItem(KEY_STORE);
  } catch {
    return null;
  }
}

export function setApiKey(key) {
  window.sessionStorage.setItem(KEY_STORE, key);
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  const key = apiKey();
  if (key) {
    headers["x-api-key"] = key;
  }
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(new URL(path, BASE), init);
  } catch {
    throw new ApiError(0, "Unreachable", "the API did not answer; retrying");
  }
  let doc = null;
  try {
    doc = await response.json();
  } catch {
    doc = null;
  }
  const message = doc && typeof doc.message === "string" ? doc.message : `HTTP ${response.status}`;
  if (response.status === 401 || response.status === 403) {
    throw new KeyNeeded(message, response.status);
  }
  if (!response.ok && !(path === "health" && response.status === 503 && doc)) {
    throw new ApiError(response.status, doc && doc.error ? doc.error : "Error", message);
  }
  return doc;
}

// "2026-11-24T15:00:00.123456+00:00" -> epoch milliseconds (Date.parse wants at most 3 digits).
export function parseTime(iso) {
  if (!iso) {
    return null;
  }
  return Date.parse(iso.replace(/(\.\d{3})\d+/, "$1"));
}

export function isoSeconds(epochSeconds) {
  return new Date(epochSeconds * 1000).toISOString();
}
