// The REST API under /api/v1, authenticated by the HttpOnly cookie the login sets.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    /** [{field: "destination.name", msg: "..."}] from RFC 9457 problem+json */
    this.errors = Array.isArray(problem?.errors) ? problem.errors : [];
  }
}

const listeners = new Set();
/** Called when the session is gone (401 on anything but the login). */
export function onUnauthorized(fn) {
  listeners.add(fn);
}

export async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, init);
  } catch (exc) {
    throw new ApiError(0, { title: "The server does not answer", detail: `The server does not answer (${exc.message}).` });
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 200) };
  }
  if (!resp.ok) {
    if (resp.status === 401 && path !== "/auth/login") listeners.forEach((fn) => fn());
    throw new ApiError(resp.status, data);
  }
  return data;
}

export const get = (path) => api("GET", path);

/**
 * A guard for reloads that overlap (a click's reload and one the live stream asked for):
 * `const turn = turns();` once per view, then in each reload `const mine = turn();` before
 * the request and `if (!mine()) return;` after it. Only the newest request's answer is drawn,
 * so an older answer that arrives late never paints a stale state over a fresher one.
 */
export function turns() {
  let latest = 0;
  return () => {
    const mine = ++latest;
    return () => mine === latest;
  };
}
export const post = (path, body) => api("POST", path, body ?? {});

/** Every item of a paged collection (follows offset/limit; stops at `most`). */
export async function all(path, most = 2000) {
  const sep = path.includes("?") ? "&" : "?";
  const items = [];
  for (;;) {
    const page = await get(`${path}${sep}offset=${items.length}&limit=500`);
    items.push(...page.items);
    if (!page.items.length || items.length >= page.total || items.length >= most) return items;
  }
}
