// Tasks: a list with filters (state and kind, applied by the API) and paging.

import { get, turns } from "../api.js";
import { append, field, h, replace } from "../dom.js";
import { tasksTable } from "./dashboard.js";

const STATES = [["", "Any state"], ["running", "Running"], ["cancelling", "Cancelling"], ["succeeded", "Succeeded"], ["failed", "Failed"], ["cancelled", "Cancelled"]];
const KINDS = [["", "Any kind"], ["copy", "Copies"], ["inventory-refresh", "Inventory refreshes"]];
const PAGE = 25;

export async function render(main, ctx) {
  const p = ctx.params;
  const state = h("select", { name: "state" }, STATES.map(([v, l]) => h("option", { value: v, selected: v === (p.get("state") || "") }, l)));
  const kind = h("select", { name: "kind" }, KINDS.map(([v, l]) => h("option", { value: v, selected: v === (p.get("kind") || "") }, l)));
  const box = h("div");
  const pager = h("div", { class: "actions pager" });
  let offset = Number(p.get("offset") || 0);
  const turn = turns(); // answers to older requests are dropped (filters changed meanwhile)

  async function load() {
    const mine = turn();
    ctx.remember({ state: state.value, kind: kind.value, offset: offset || "" });
    const q = new URLSearchParams({ offset, limit: PAGE });
    if (state.value) q.set("state", state.value);
    if (kind.value) q.set("kind", kind.value);
    const page = await get(`/tasks?${q}`);
    if (!mine()) return;
    replace(box, tasksTable("!Tasks", page.items, state.value || kind.value ? "No task matches these filters." : "No tasks."));
    const last = Math.min(offset + PAGE, page.total);
    replace(pager,
      h("button", { type: "button", class: "secondary small", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, "Newer"),
      h("span", { class: "muted" }, page.total ? `${offset + 1}–${last} of ${page.total}` : ""),
      h("button", { type: "button", class: "secondary small", disabled: last >= page.total, onclick: () => { offset += PAGE; load(); } }, "Older"));
  }

  state.addEventListener("change", () => { offset = 0; load(); });
  kind.addEventListener("change", () => { offset = 0; load(); });
  append(main, h("h1", {}, "Tasks"),
    h("form", { class: "filters", "aria-label": "Filter tasks", onsubmit: (e) => e.preventDefault() },
      field("State", state), field("Kind", kind)),
    box, pager);
  await load();
  return { events: ["task"], refresh: load };
}
