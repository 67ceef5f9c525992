// Settings: clouds (add, edit, remove, test connection) and nodes (add with a one-time
// enrollment token, remove). Administrators change things; everyone else reads.
//
// "Test connection" asks the cloud's node for a fresh inventory (POST /clouds/{id}/refresh)
// and reports how that task ends and whether the node could reach the cloud: there is no
// separate connection check in the API; listing the inventory is what proves the credentials.

import { ApiError, api, get, post, turns } from "../api.js";
import { append, badge, confirmDialog, field, h, replace, table } from "../dom.js";
import { plainError } from "../format.js";
import { showErrors } from "../forms.js";
import { cloudHealth, nodeStatus } from "./dashboard.js";
import { usersSection } from "./users.js";

const TEST_TIMEOUT_MS = 60000;

function cloudForm(nodes, existing, done) {
  const editing = Boolean(existing);
  const v = existing || {};
  const id = h("input", { name: "id", value: v.id || "", disabled: editing, autocomplete: "off", spellcheck: "false" });
  const kind = h("select", { name: "kind", disabled: editing },
    h("option", { value: "vsphere", selected: v.kind !== "vcd" }, "vSphere (vCenter)"),
    h("option", { value: "vcd", selected: v.kind === "vcd" }, "Cloud Director"));
  const endpoint = h("input", { name: "endpoint", type: "url", value: v.endpoint || "", placeholder: "https://vcenter.example.com/sdk", spellcheck: "false" });
  const username = h("input", { name: "username", value: v.username || "", autocomplete: "off", spellcheck: "false" });
  const password = h("input", { name: "password", type: "password", autocomplete: "new-password", placeholder: editing ? "unchanged" : "" });
  const org = h("input", { name: "org", value: v.org || "", autocomplete: "off" });
  const node = h("select", { name: "node" }, h("option", { value: "" }, "— choose —"),
    nodes.map((n) => h("option", { value: n.id, selected: n.id === v.node_id }, `${n.id} (${n.status})`)));
  const insecure = h("input", { type: "checkbox", name: "insecure", checked: Boolean(v.insecure) });
  const thumbprint = h("input", { name: "thumbprint", value: v.thumbprint || "", autocomplete: "off", spellcheck: "false" });
  const summary = h("div", { class: "alert", role: "alert", tabindex: "-1", hidden: true });
  const orgField = field("Organization", org, { field: "org", hint: "Cloud Director: the org to log in to." });
  const sync = () => { orgField.hidden = kind.value !== "vcd"; };
  kind.addEventListener("change", sync);
  sync();

  async function submit(event) {
    event.preventDefault();
    showErrors(form, summary, null);
    const body = { endpoint: endpoint.value, username: username.value, insecure: insecure.checked,
      thumbprint: thumbprint.value || null, node_id: node.value, org: kind.value === "vcd" ? org.value || null : null };
    if (password.value || !editing) body.password = password.value;
    try {
      if (editing) await api("PATCH", `/clouds/${encodeURIComponent(v.id)}`, body);
      else await post("/clouds", { id: id.value, kind: kind.value, ...body });
      done(editing ? `Saved ${v.id}.` : `Added ${id.value}; its node is listing it now.`);
    } catch (exc) {
      showErrors(form, summary, exc, { title: "The cloud was not saved", conflictField: "id" });
    }
  }

  const form = h("form", { class: "card settings-form", novalidate: true, onsubmit: submit, "aria-labelledby": "cloud-form-title" },
    h("h3", { id: "cloud-form-title" }, editing ? `Edit cloud ${v.id}` : "Add a cloud"),
    summary,
    h("div", { class: "grid-fields" },
      field("Cloud id", id, { field: "id", hint: editing ? null : "Lower-case letters, digits and -" }),
      field("Kind", kind, { field: "kind" }),
      field("Endpoint", endpoint, { field: "endpoint", wide: true }),
      field("User name", username, { field: "username" }),
      field("Password", password, { field: "password" }),
      orgField,
      field("Served by node", node, { field: "node_id" }),
      field("Certificate thumbprint (SHA-256)", thumbprint, { field: "thumbprint", hint: "Pins the endpoint's certificate." }),
      field("Skip TLS verification (test clouds only)", insecure, { field: "insecure" })),
    h("div", { class: "actions" },
      h("button", { type: "submit" }, editing ? "Save" : "Add cloud"),
      editing ? h("button", { type: "button", class: "secondary", onclick: () => done(null) }, "Cancel") : null));
  return form;
}

/** Refresh the cloud's inventory and report the outcome in `out`. */
async function testConnection(cloud, out) {
  replace(out, badge("testing…", "info"));
  try {
    const task = await post(`/clouds/${encodeURIComponent(cloud.id)}/refresh`);
    const deadline = Date.now() + TEST_TIMEOUT_MS;
    let t = task;
    while (!["succeeded", "failed", "cancelled"].includes(t.state) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      t = await get(`/tasks/${task.id}`);
    }
    const after = await get(`/clouds/${encodeURIComponent(cloud.id)}`);
    const step = t.steps[0];
    if (t.state === "succeeded" && after.reachable !== false && !after.inventory_error) {
      const n = step?.result?.items;
      replace(out, badge("connected", "ok"), ` ${n ?? "?"} objects listed`);
    } else if (t.state === "succeeded") {
      replace(out, badge("failed", "bad"), ` ${after.inventory_error ? plainError(after.inventory_error) : "Its node could not reach the cloud."}`);
    } else if (["failed", "cancelled"].includes(t.state)) {
      replace(out, badge("failed", "bad"), ` ${plainError(step?.error || t.error) || t.state}`);
    } else {
      replace(out, badge("no answer", "warn"), ` node ${cloud.node_id} did not answer within ${TEST_TIMEOUT_MS / 1000} s`);
    }
  } catch (exc) {
    replace(out, badge("failed", "bad"), ` ${exc.message}`);
  }
}

export async function render(main, ctx) {
  const admin = ctx.session.can("admin");
  const cloudsBox = h("div");
  const nodesBox = h("div");
  const formBox = h("div");
  const notice = h("p", { class: "notice", role: "status" });
  const tokenBox = h("div", { "aria-live": "polite" });
  let clouds = [];
  let nodes = [];
  const results = new Map(); // cloud id → the <span> with its last test result
  const turn = turns(); // an edit's reload and the live stream's may overlap

  function say(text) {
    notice.textContent = text || "";
  }

  function showAddForm(message) {
    if (message !== undefined) say(message);
    replace(formBox, admin ? cloudForm(nodes, null, async (msg) => { say(msg); await load(); showAddForm(); }) : null);
  }

  async function remove(kind, item) {
    if (!(await confirmDialog(`Remove ${kind} ${item.id}? ${kind === "cloud" ? "Nothing in the cloud itself is touched." : ""}`))) return;
    try {
      await api("DELETE", `/${kind}s/${encodeURIComponent(item.id)}`);
      say(`Removed ${kind} ${item.id}.`);
    } catch (exc) {
      say(`Cannot remove ${item.id}: ${exc instanceof ApiError ? exc.message : exc}`);
    }
    await load();
  }

  function cloudActions(c) {
    const out = results.get(c.id) || h("span", { class: "test-result" });
    results.set(c.id, out);
    const operator = ctx.session.can("operator");
    return h("span", { class: "row-actions" },
      operator ? h("button", { type: "button", class: "small secondary", "data-key": `test-${c.id}`, "aria-label": `Test connection to ${c.id}`, onclick: () => testConnection(c, out) }, "Test connection") : null,
      admin ? h("button", { type: "button", class: "small secondary", "data-key": `edit-${c.id}`, "aria-label": `Edit ${c.id}`,
        onclick: () => { replace(formBox, cloudForm(nodes, c, async (msg) => { if (msg) say(msg); await load(); showAddForm(); })); formBox.querySelector("input:not([disabled])")?.focus(); } }, "Edit") : null,
      admin ? h("button", { type: "button", class: "small danger", "data-key": `remove-${c.id}`, "aria-label": `Remove ${c.id}`, onclick: () => remove("cloud", c) }, "Remove") : null,
      out);
  }

  async function load() {
    const mine = turn();
    const answers = await Promise.all([get("/clouds?limit=500").then((p) => p.items), get("/nodes?limit=500").then((p) => p.items)]);
    if (!mine()) return;
    [clouds, nodes] = answers;
    replace(cloudsBox, table("!Clouds", [
      { label: "Cloud", cell: (c) => c.id },
      { label: "Kind", cell: (c) => (c.kind === "vcd" ? `Cloud Director (org ${c.org || "?"})` : "vSphere") },
      { label: "Endpoint", cell: (c) => [h("span", { class: "mono wrap" }, c.endpoint), h("br"), h("span", { class: "muted small" }, `as ${c.username}${c.insecure ? " · TLS not verified" : ""}`)], class: "endpoint" },
      { label: "Node", cell: (c) => c.node_id, class: "nowrap" },
      { label: "Health", cell: cloudHealth },
      { label: "Actions", cell: cloudActions, class: "actions-cell" },
    ], clouds, { empty: "No clouds yet.", rowKey: (c) => c.id }));
    replace(nodesBox, table("!Nodes", [
      { label: "Node", cell: (n) => n.id },
      { label: "Status", cell: nodeStatus },
      { label: "Receiver", cell: (n) => h("span", { class: "mono wrap" }, n.receiver_url || "–") },
      { label: "Serves", cell: (n) => clouds.filter((c) => c.node_id === n.id).map((c) => c.id).join(", ") || "–" },
      { label: "Actions", cell: (n) => (admin ? h("button", { type: "button", class: "small danger", "data-key": `remove-node-${n.id}`, "aria-label": `Remove node ${n.id}`, onclick: () => remove("node", n) }, "Remove") : "") },
    ], nodes, { empty: "No nodes yet.", rowKey: (n) => n.id }));
  }

  function nodeForm() {
    const id = h("input", { name: "node-id", autocomplete: "off", spellcheck: "false" });
    const summary = h("div", { class: "alert", role: "alert", tabindex: "-1", hidden: true });
    const form = h("form", { class: "card settings-form", novalidate: true, "aria-labelledby": "node-form-title", onsubmit: async (event) => {
      event.preventDefault();
      showErrors(form, summary, null);
      try {
        const created = await post("/nodes", { id: id.value });
        const command = `hcc node --id ${created.id} --server ${location.origin} --enroll-token ${created.enroll_token} --listen 0.0.0.0:8443 --data-dir /var/lib/hcc-node`;
        replace(tokenBox, h("div", { class: "card token" },
          h("h3", {}, `Node ${created.id} added`),
          h("p", {}, "Its enrollment token is shown only this once. It works once; start the node with it:"),
          h("label", { for: "enroll-token" }, "Enrollment token"),
          h("input", { id: "enroll-token", class: "mono", readonly: true, value: created.enroll_token }),
          h("label", { for: "enroll-command" }, "Command on the node's machine"),
          h("textarea", { id: "enroll-command", class: "mono", readonly: true, rows: 3 }, command)));
        id.value = "";
        await load();
        document.getElementById("enroll-token").select();
      } catch (exc) {
        showErrors(form, summary, exc, { title: "The node was not added", conflictField: "id" });
      }
    } },
    h("h3", { id: "node-form-title" }, "Add a node"), summary,
    field("Node id", id, { field: "id", hint: "Lower-case letters, digits and -, e.g. n-vsphere" }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Add node")));
    return form;
  }

  const users = admin ? usersSection(say) : null;
  append(main, h("h1", {}, "Settings"), notice,
    admin ? null : h("p", { class: "muted" }, "Only an administrator can change these settings."),
    h("section", { "aria-labelledby": "set-clouds" }, h("h2", { id: "set-clouds" }, "Clouds"), cloudsBox, formBox),
    h("section", { "aria-labelledby": "set-nodes" }, h("h2", { id: "set-nodes" }, "Nodes"), nodesBox,
      admin ? nodeForm() : null, tokenBox),
    users?.section);
  await Promise.all([load(), users?.load()]);
  showAddForm();
  return { events: ["node", "cloud"], refresh: load };
}
