// Dashboard: every cloud with its kind, endpoint, node and health; the nodes; running and
// recent tasks. Live: each section reloads when the server announces a change of its kind.

import { get, turns } from "../api.js";
import { append, badge, h, progress, replace, table } from "../dom.js";
import { bytes, plainError, STATE_TONES, taskSummary, TASK_KINDS, timeEl } from "../format.js";

export function cloudHealth(cloud) {
  if (!cloud.node_online) return badge("node offline", "bad", `Node ${cloud.node_id} sends no heartbeat`);
  if (cloud.inventory_error) return badge("error", "bad", plainError(cloud.inventory_error));
  if (cloud.reachable === true) return badge("reachable", "ok");
  if (cloud.reachable === false) return badge("unreachable", "bad", "Its node cannot reach the cloud");
  return badge("unknown", "neutral", "Not checked yet");
}

export function nodeStatus(node) {
  return badge(node.status, STATE_TONES[node.status] || "neutral");
}

function cloudsTable(clouds) {
  return table("!Clouds", [
    { label: "Cloud", cell: (c) => h("a", { href: `#/inventory?left=${encodeURIComponent(c.id)}`, "data-key": `cloud-${c.id}` }, c.id) },
    { label: "Kind", cell: (c) => (c.kind === "vcd" ? "Cloud Director" : "vSphere") },
    { label: "Endpoint", cell: (c) => h("span", { class: "mono wrap" }, c.endpoint), class: "endpoint" },
    { label: "Node", cell: (c) => c.node_id, class: "nowrap" },
    { label: "Health", cell: cloudHealth },
    { label: "Inventory", cell: (c) => (c.inventory_at ? ["listed ", timeEl(c.inventory_at)] : "not listed yet") },
  ], clouds, { empty: "No clouds yet. An administrator adds them under Settings.", rowKey: (c) => c.id });
}

function nodesTable(nodes) {
  return table("!Nodes", [
    { label: "Node", cell: (n) => n.id },
    { label: "Status", cell: nodeStatus },
    { label: "Version", cell: (n) => n.version || "–" },
    { label: "Last heartbeat", cell: (n) => timeEl(n.last_heartbeat) },
    { label: "Free transfer storage", cell: (n) => (n.free_bytes === null ? "–" : `${bytes(n.free_bytes)} of ${bytes(n.total_bytes)}`) },
    { label: "Running steps", cell: (n) => String(n.running_steps.length) },
  ], nodes, { empty: "No nodes yet.", rowKey: (n) => n.id });
}

export function tasksTable(caption, tasks, empty) {
  return table(caption, [
    { label: "Task", cell: (t) => h("a", { href: `#/tasks/${t.id}`, "data-key": `task-${t.id}` }, TASK_KINDS[t.kind] || t.kind) },
    { label: "What", cell: (t) => h("span", { class: "wrap" }, taskSummary(t)) },
    { label: "State", cell: (t) => badge(t.state, STATE_TONES[t.state]) },
    { label: "Progress", cell: (t) => progressOf(t) },
    { label: "Started", cell: (t) => timeEl(t.created_at) },
    { label: "By", cell: (t) => t.created_by },
  ], tasks, { empty, rowKey: (t) => t.id });
}

/** A task's progress: its finished steps, plus the done fraction of the ones under way. */
export function progressOf(task) {
  const steps = task.steps || [];
  if (task.kind !== "copy" || !steps.length) return h("span", { class: "muted" }, "–");
  if (task.state === "succeeded") return progress(100, "task progress");
  let done = 0;
  for (const s of steps) {
    if (s.state === "succeeded") done += 1;
    else if (s.state === "running" && s.percent !== null) done += s.percent / 100;
  }
  return progress((100 * done) / steps.length, "task progress");
}

export async function render(main) {
  const cloudsBox = h("div", { "aria-live": "off" });
  const nodesBox = h("div");
  const runningBox = h("div");
  const recentBox = h("div");

  const [cloudsTurn, nodesTurn, tasksTurn] = [turns(), turns(), turns()];
  async function clouds() {
    const mine = cloudsTurn();
    const page = await get("/clouds?limit=500");
    if (mine()) replace(cloudsBox, cloudsTable(page.items));
  }
  async function nodes() {
    const mine = nodesTurn();
    const page = await get("/nodes?limit=500");
    if (mine()) replace(nodesBox, nodesTable(page.items));
  }
  async function tasks() {
    const mine = tasksTurn();
    const [running, recent] = await Promise.all([get("/tasks?state=running&limit=20"), get("/tasks?limit=10")]);
    if (!mine()) return;
    replace(runningBox, tasksTable("Running tasks", running.items, "No task is running."));
    replace(recentBox, tasksTable("Recent tasks", recent.items.filter((t) => t.state !== "running"), "No finished tasks yet."));
  }

  append(main, 
    h("h1", {}, "Dashboard"),
    h("div", { class: "columns" },
      h("section", { "aria-labelledby": "dash-clouds" }, h("h2", { id: "dash-clouds" }, "Clouds"), cloudsBox),
      h("section", { "aria-labelledby": "dash-nodes" }, h("h2", { id: "dash-nodes" }, "Nodes"), nodesBox)),
    h("section", { "aria-labelledby": "dash-tasks" },
      h("h2", { id: "dash-tasks" }, "Tasks ", h("a", { href: "#/tasks", class: "small-link" }, "all tasks")),
      runningBox, recentBox));
  await Promise.all([clouds(), nodes(), tasks()]);
  return {
    events: ["task", "node", "cloud"],
    async refresh(notes) {
      const types = new Set(notes.map((n) => n.type));
      await Promise.all([
        types.size ? clouds() : null,
        types.has("node") ? nodes() : null,
        types.has("task") ? tasks() : null,
      ]);
    },
  };
}
