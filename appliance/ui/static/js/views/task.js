// One task: each step's live progress (bytes, rate, ETA), what happened, errors in plain
// words, and the cancel and retry buttons (operators).

import { ApiError, get, post, turns } from "../api.js";
import { append, badge, h, progress, replace, table } from "../dom.js";
import { bytes, duration, plainError, rate, STATE_TONES, taskSummary, TASK_KINDS, timeEl, when } from "../format.js";
import { progressOf } from "./dashboard.js";

const ACTIVE = new Set(["running"]);
const RETRYABLE = new Set(["failed", "cancelled"]);

const STEP_NAMES = {
  export: "Export from the source", send: "Send to the destination node", import: "Import into the destination",
  deploy: "Deploy", cleanup: "Clean up transfer storage", refresh: "List the cloud's inventory",
  "cleanup-source": "Clean up on the source node", "cleanup-destination": "Clean up on the destination node",
};
const MOVING = new Set(["dispatched", "running"]);

function stepProgress(step) {
  const pct = step.state === "succeeded" ? 100 : step.percent;
  if ((pct === null || pct === undefined) && !MOVING.has(step.state)) {
    return h("span", { class: "muted" }, step.state === "pending" ? "waiting" : "–");
  }
  const amount = step.bytes_total ? `${bytes(step.bytes_done)} of ${bytes(step.bytes_total)}` : step.bytes_done ? bytes(step.bytes_done) : "";
  return h("span", { class: "stack" }, progress(pct, `${step.name} progress`), amount ? h("span", { class: "small muted" }, amount) : null);
}

function stepNote(step) {
  if (step.error) return h("span", { class: "error-text" }, plainError(step.error));
  if (step.message && step.state !== "succeeded") return step.message; // "uploading" is stale once done
  if (step.result && step.name === "refresh" && "items" in step.result) return `${step.result.items} objects listed`;
  return "";
}

// Live while running; once succeeded, the average the server computes (none for a retried step).
function stepRate(step) {
  if (step.state === "running") return rate(step.rate_bytes_per_s);
  if (step.state !== "succeeded" || !step.average_bytes_per_s) return "–";
  return h("span", { title: "average" }, `${rate(step.average_bytes_per_s)} avg`);
}

function stepsTable(task) {
  return table("!Steps", [
    { label: "Step", cell: (s) => h("span", {}, STEP_NAMES[s.name] || s.name, s.attempt ? h("span", { class: "muted small" }, ` (attempt ${s.attempt + 1})`) : null) },
    { label: "Node", cell: (s) => s.node_id },
    { label: "State", cell: (s) => badge(s.state, STATE_TONES[s.state]) },
    { label: "Progress", cell: stepProgress },
    { label: "Rate", cell: stepRate },
    { label: "ETA", cell: (s) => (s.state === "running" && s.eta_s !== null ? duration(s.eta_s) : "–") },
    { label: "Notes", cell: stepNote, class: "notes" },
  ], task.steps, { rowKey: (s) => s.name });
}

function eventsList(events) {
  if (!events.length) return h("p", { class: "empty" }, "Nothing yet.");
  return h("ol", { class: "events" }, events.map((e) => h("li", {},
    h("time", { datetime: e.ts }, when(e.ts)), " ", badge(e.type, "neutral"), " ", e.message)));
}

export async function render(main, ctx) {
  const id = ctx.match[1];
  const head = h("div");
  const overall = h("div");
  const steps = h("div");
  const events = h("div");
  const notice = h("p", { class: "alert", role: "alert", hidden: true });
  const turn = turns(); // a click's reload and the live stream's may overlap

  async function act(name) {
    notice.hidden = true;
    try {
      await post(`/tasks/${id}/${name}`);
      await load();
    } catch (exc) {
      notice.textContent = `Cannot ${name}: ${exc instanceof ApiError ? exc.message : exc}`;
      notice.hidden = false;
    }
  }

  async function load() {
    const mine = turn();
    const t = await get(`/tasks/${id}`);
    if (!mine()) return;
    const buttons = ctx.session.can("operator") ? [
      ACTIVE.has(t.state) ? h("button", { type: "button", class: "danger", "data-key": "cancel", onclick: () => act("cancel") }, "Cancel task") : null,
      RETRYABLE.has(t.state) ? h("button", { type: "button", "data-key": "retry", onclick: () => act("retry") }, "Retry") : null,
    ] : [];
    const ran = t.finished_at ? (new Date(t.finished_at) - new Date(t.created_at)) / 1000 : null;
    replace(head,
      h("h1", {}, `${TASK_KINDS[t.kind] || t.kind}: `, h("span", { class: "wrap" }, taskSummary(t))),
      h("div", { class: "task-head" },
        badge(t.state, STATE_TONES[t.state]),
        h("span", { class: "muted" }, "started ", timeEl(t.created_at), ` by ${t.created_by}`,
          ran !== null ? ` · took ${duration(ran)}` : ""),
        h("span", { class: "actions" }, buttons)));
    replace(overall,
      t.error ? h("p", { class: "alert" }, plainError(t.error)) : null,
      t.kind === "copy" ? h("p", { class: "overall" }, progressOf(t),
        ` ${t.steps.filter((s) => s.state === "succeeded").length} of ${t.steps.length} steps done`) : null);
    replace(steps, stepsTable(t));
    replace(events, eventsList(t.events));
  }

  append(main, head, notice, overall,
    h("section", { "aria-labelledby": "task-steps" }, h("h2", { id: "task-steps" }, "Steps"), steps),
    h("section", { "aria-labelledby": "task-events" }, h("h2", { id: "task-events" }, "What happened"), events),
    h("p", {}, h("a", { href: "#/tasks" }, "← All tasks")));
  try {
    await load();
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 404) {
      replace(head, h("h1", {}, "No such task"));
      return null;
    }
    throw exc;
  }
  return {
    events: ["task"],
    async refresh(notes) {
      if (notes.some((n) => n.id === id)) await load();
    },
  };
}
