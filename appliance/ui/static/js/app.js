// The shell: session, navigation, live updates (SSE) and the router.
//
// Routes live in the URL's hash (#/tasks/ID), so the server only serves one page and every
// view can be bookmarked and reloaded. Each view is `render(main, ctx)` and may return
// {events: ["task", ...], refresh(note), dispose()}: the shell calls refresh (debounced)
// when the server announces a change of one of those kinds.

import { ApiError, get, onUnauthorized, post } from "./api.js";
import { h, replace } from "./dom.js";
import { tickRelativeTimes } from "./format.js";
import * as dashboard from "./views/dashboard.js";
import * as inventory from "./views/inventory.js";
import * as copy from "./views/copy.js";
import * as tasks from "./views/tasks.js";
import * as task from "./views/task.js";
import * as settings from "./views/settings.js";
import * as login from "./views/login.js";

const RANK = { viewer: 0, operator: 1, admin: 2 };

export const session = {
  user: null,
  can(role) {
    return this.user !== null && RANK[this.user.role] >= RANK[role];
  },
};

const NAV = [
  ["#/", "Dashboard", "viewer"],
  ["#/inventory", "Inventory", "viewer"],
  ["#/copy", "Copy", "operator"],
  ["#/tasks", "Tasks", "viewer"],
  ["#/settings", "Settings", "viewer"],
];

const ROUTES = [
  [/^\/?$/, dashboard.render],
  [/^\/inventory$/, inventory.render],
  [/^\/copy$/, copy.render],
  [/^\/tasks$/, tasks.render],
  [/^\/tasks\/([0-9a-f-]{36})$/, task.render],
  [/^\/settings$/, settings.render],
];

let current = null; // the mounted view: {events, refresh, dispose}
let live = null; // the EventSource
let liveState = "connecting";

/** The hash route as {path, params}. */
export function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  return { path, params: new URLSearchParams(query) };
}

export function go(path, params) {
  const query = params ? `?${new URLSearchParams(params)}` : "";
  const target = `#${path}${query}`;
  if (location.hash === target) mount();
  else location.hash = target;
}

/** Change the query of the current route without re-rendering (filters, selections). */
export function remember(params) {
  const { path } = route();
  const clean = Object.fromEntries(Object.entries(params).filter(([, v]) => v));
  const query = new URLSearchParams(clean).toString();
  history.replaceState(null, "", `#${path}${query ? `?${query}` : ""}`);
}

function header() {
  const top = document.getElementById("top");
  const { path } = route();
  const section = `/${path.split("/")[1] || ""}`;
  const links = NAV.filter(([, , role]) => session.can(role)).map(([href, label]) => {
    const here = href.slice(1) === section || (href === "#/" && section === "/");
    return h("li", {}, h("a", { href, "aria-current": here ? "page" : null, "data-key": `nav-${label}` }, label));
  });
  replace(top,
    h("a", { class: "brand", href: "#/" }, h("img", { src: "/ui/favicon.svg", alt: "", width: 24, height: 24 }), "hcc"),
    h("nav", { "aria-label": "Main" }, h("ul", {}, links)),
    h("div", { class: "who" },
      h("span", { class: `live ${liveState}`, role: "status", title: "Live updates from the server" },
        liveState === "open" ? "live" : liveState === "connecting" ? "connecting…" : "reconnecting…"),
      h("span", { class: "user" }, session.user.username, " ", h("span", { class: "role" }, session.user.role)),
      h("button", { type: "button", class: "secondary small", onclick: logout, "data-key": "logout" }, "Log out")));
  top.hidden = false;
}

async function mount() {
  if (!session.user) return;
  current?.dispose?.();
  current = null;
  header();
  const { path, params } = route();
  const main = document.getElementById("main");
  let render = null;
  let match = null;
  for (const [pattern, fn] of ROUTES) {
    match = path.match(pattern);
    if (match) {
      render = fn;
      break;
    }
  }
  main.replaceChildren();
  if (!render) {
    main.append(h("h1", {}, "Not found"), h("p", {}, "There is no page here. ", h("a", { href: "#/" }, "Go to the dashboard.")));
    return;
  }
  const ctx = { params, match, session, go, remember };
  try {
    current = (await render(main, ctx)) || null;
  } catch (exc) {
    main.append(h("p", { class: "alert", role: "alert" }, `This page could not load: ${exc.message}`));
  }
  const heading = main.querySelector("h1");
  if (heading && document.activeElement === document.body) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

// --- live updates ------------------------------------------------------------------------

let pending = [];
let timer = null;

function announce(note) {
  if (!current?.events?.includes(note.type)) return;
  pending.push(note);
  if (timer) return;
  timer = setTimeout(async () => {
    const notes = pending;
    pending = [];
    const view = current;
    try {
      await view?.refresh?.(notes);
    } catch (exc) {
      if (!(exc instanceof ApiError && exc.status === 401)) console.warn("refresh failed", exc);
    } finally {
      timer = null;
      if (pending.length) announce(pending.pop());
    }
  }, 250);
}

function connectLive() {
  live?.close();
  live = new EventSource("/api/v1/events/stream");
  const setState = (state) => {
    if (liveState === state) return;
    liveState = state;
    if (session.user) header();
  };
  live.onopen = () => setState("open");
  live.onerror = () => setState(live.readyState === EventSource.CLOSED ? "closed" : "connecting");
  for (const type of ["task", "node", "cloud"]) {
    live.addEventListener(type, (e) => {
      try {
        announce(JSON.parse(e.data));
      } catch {
        /* not ours */
      }
    });
  }
}

// --- session -------------------------------------------------------------------------------

export function start(user) {
  session.user = user;
  connectLive();
  if (route().path === "/login") go("/");
  else mount();
}

async function logout() {
  try {
    await post("/auth/logout");
  } catch {
    /* the session is gone either way */
  }
  signedOut();
}

function signedOut(message) {
  session.user = null;
  live?.close();
  live = null;
  current?.dispose?.();
  current = null;
  document.getElementById("top").hidden = true;
  login.render(document.getElementById("main"), { message, onLogin: start });
}

onUnauthorized(() => {
  if (session.user) signedOut("Your session has ended. Please log in again.");
});

window.addEventListener("hashchange", mount);
setInterval(() => tickRelativeTimes(), 10000);

async function boot() {
  try {
    start(await get("/auth/me"));
  } catch (exc) {
    const unreachable = exc instanceof ApiError && exc.status === 0;
    signedOut(unreachable ? exc.message : undefined);
  }
}

boot();
