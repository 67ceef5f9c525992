// Inventory browser: one or two clouds side by side. vSphere shows datacenter / folder /
// VM and template; Cloud Director shows org / VDC / catalog / vApp template and vApp.
// Without a filter a tree (native <details>, so keyboard works as is); with a name or kind
// filter the API's filtered flat list with each object's path.

import { all, ApiError, get, post, turns } from "../api.js";
import { append, badge, field, h, replace } from "../dom.js";
import { bytes, kindLabel, timeEl } from "../format.js";

export const COPYABLE = new Set(["vm", "template", "vapp_template", "vapp"]);

const KIND_FILTERS = {
  vsphere: [["", "Everything"], ["vm", "VMs"], ["template", "Templates"], ["folder", "Folders"], ["datastore", "Datastores"], ["network", "Networks"], ["host", "Hosts"]],
  vcd: [["", "Everything"], ["vapp_template", "vApp templates"], ["vapp", "vApps"], ["vm", "VMs"], ["catalog", "Catalogs"], ["vdc", "VDCs"], ["network", "Networks"]],
};

function details(item) {
  const bits = [];
  if (item.power_state) {
    const on = /on/i.test(item.power_state) && !/off/i.test(item.power_state);
    bits.push(h("span", { class: `power ${on ? "on" : "off"}` }, on ? "powered on" : item.power_state.replace(/^powered/i, "powered ").toLowerCase()));
  }
  if (item.cpus) bits.push(`${item.cpus} vCPU`);
  if (item.memory_mib) bits.push(bytes(item.memory_mib * 1024 * 1024));
  if (item.disks?.length) {
    const total = item.disks.reduce((sum, d) => sum + d.capacity_bytes, 0);
    bits.push(`${item.disks.length} disk${item.disks.length > 1 ? "s" : ""} ${bytes(total)}`);
  }
  if (item.capacity_bytes) bits.push(item.free_bytes !== null && item.free_bytes !== undefined
    ? `${bytes(item.free_bytes)} free of ${bytes(item.capacity_bytes)}` : bytes(item.capacity_bytes));
  return bits.length ? h("span", { class: "meta" }, bits.flatMap((b, i) => (i ? [" · ", b] : [b]))) : null;
}

function itemLine(cloud, item, canCopy, showPath) {
  const copy = canCopy && COPYABLE.has(item.kind)
    ? h("a", { class: "button small secondary", href: `#/copy?${new URLSearchParams({ cloud: cloud.id, ref: item.path })}`,
        "aria-label": `Copy ${item.name}`, "data-key": `copy-${cloud.id}-${item.id}` }, "Copy…")
    : null;
  return h("span", { class: "item", dataset: { kind: item.kind, path: item.path } },
    h("span", { class: "what" },
      h("span", { class: "name" }, item.name),
      badge(kindLabel(item.kind), `kind-${item.kind}`),
      details(item),
      showPath ? h("span", { class: "path mono" }, item.path) : null),
    copy);
}

function tree(cloud, items, canCopy) {
  const byParent = new Map();
  const ids = new Set(items.map((i) => i.id));
  for (const item of items) {
    const parent = item.parent_id && ids.has(item.parent_id) ? item.parent_id : "";
    if (!byParent.has(parent)) byParent.set(parent, []);
    byParent.get(parent).push(item);
  }
  for (const list of byParent.values()) list.sort((a, b) => a.name.localeCompare(b.name));
  const open = items.length <= 80;
  const branch = (parent, depth) => h("ul", { class: "tree", role: depth ? null : "list" },
    (byParent.get(parent) || []).map((item) => {
      const children = byParent.get(item.id);
      if (!children) return h("li", {}, itemLine(cloud, item, canCopy, false));
      return h("li", {}, h("details", { open: open || depth < 1 },
        h("summary", {}, itemLine(cloud, item, canCopy, false)), branch(item.id, depth + 1)));
    }));
  return branch("", 0);
}

function flat(cloud, items, canCopy) {
  return h("ul", { class: "flat" }, items.map((item) => h("li", {}, itemLine(cloud, item, canCopy, true))));
}

/** One pane: a cloud picker, filters, and the cloud's objects. */
function pane(side, clouds, initial, ctx, onChange) {
  const canCopy = ctx.session.can("operator");
  const select = h("select", { name: `${side}-cloud` },
    clouds.map((c) => h("option", { value: c.id, selected: c.id === initial.cloud }, `${c.id} (${c.kind === "vcd" ? "vCD" : "vSphere"})`)));
  const name = h("input", { type: "search", name: `${side}-name`, value: initial.name || "", placeholder: "part of a name" });
  const kind = h("select", { name: `${side}-kind` });
  const body = h("div", { class: "pane-body", "aria-live": "polite", "aria-busy": "false" });
  const status = h("p", { class: "muted small" });
  const refresh = canCopy ? h("button", { type: "button", class: "secondary small", onclick: refreshCloud }, "Refresh") : null;
  let timer = null;
  const turn = turns(); // answers to older requests are dropped (filters changed meanwhile)

  const cloud = () => clouds.find((c) => c.id === select.value);

  function fillKinds(value) {
    const c = cloud();
    replace(kind, (KIND_FILTERS[c?.kind] || [["", "Everything"]]).map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
  }

  async function load() {
    const c = cloud();
    if (!c) {
      replace(body, h("p", { class: "empty" }, "No clouds yet."));
      return;
    }
    onChange(side, { cloud: c.id, name: name.value, kind: kind.value });
    body.setAttribute("aria-busy", "true");
    const q = new URLSearchParams();
    if (name.value) q.set("name", name.value);
    if (kind.value) q.set("kind", kind.value);
    const mine = turn();
    try {
      const page = await get(`/clouds/${encodeURIComponent(c.id)}/inventory?${q}&limit=1000`);
      if (!mine()) return;
      const filtered = name.value || kind.value;
      replace(status, page.inventory_at ? ["Listed ", timeEl(page.inventory_at), ` · ${page.total} object${page.total === 1 ? "" : "s"}`] : "Not listed yet.");
      if (!page.items.length) {
        replace(body, h("p", { class: "empty" }, filtered ? "Nothing matches." : c.inventory_error ? `The last listing failed: ${c.inventory_error.message || ""}` : "This cloud's node has not listed anything yet."));
      } else if (filtered) {
        replace(body, flat(c, page.items, canCopy));
      } else {
        const items = page.total > page.items.length ? await all(`/clouds/${encodeURIComponent(c.id)}/inventory`, 5000) : page.items;
        if (!mine()) return;
        replace(body, tree(c, items, canCopy));
      }
    } catch (exc) {
      replace(body, h("p", { class: "alert", role: "alert" }, `Cannot load the inventory: ${exc.message}`));
    } finally {
      body.setAttribute("aria-busy", "false");
    }
  }

  async function refreshCloud() {
    const c = cloud();
    refresh.disabled = true;
    replace(status, "Asking the node for a fresh listing…");
    try {
      await post(`/clouds/${encodeURIComponent(c.id)}/refresh`);
    } catch (exc) {
      replace(status, h("span", { class: "error-text" }, exc instanceof ApiError ? exc.message : String(exc)));
    } finally {
      refresh.disabled = false;
    }
  }

  select.addEventListener("change", () => {
    fillKinds("");
    load();
  });
  kind.addEventListener("change", load);
  name.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(load, 250);
  });
  fillKinds(initial.kind || "");

  const label = side === "left" ? "First cloud" : "Second cloud";
  const el = h("section", { class: "pane card", "aria-label": label, dataset: { pane: side } },
    h("div", { class: "pane-head" },
      field("Cloud", select), field("Filter by name", name), field("Show", kind),
      h("div", { class: "pane-actions" }, refresh)),
    status, body);
  return { el, load, cloudId: () => select.value };
}

export async function render(main, ctx) {
  const clouds = (await get("/clouds?limit=500")).items;
  const p = ctx.params;
  const state = {
    left: { cloud: p.get("left") || clouds[0]?.id, name: p.get("lname"), kind: p.get("lkind") },
    right: { cloud: p.get("right") || clouds.find((c) => c.id !== (p.get("left") || clouds[0]?.id))?.id || clouds[0]?.id, name: p.get("rname"), kind: p.get("rkind") },
  };
  const onChange = (side, s) => {
    state[side] = s;
    ctx.remember({ left: state.left.cloud, lname: state.left.name, lkind: state.left.kind,
      right: state.right.cloud, rname: state.right.name, rkind: state.right.kind });
  };
  const panes = clouds.length > 1 ? ["left", "right"] : ["left"];
  const built = panes.map((side) => pane(side, clouds, state[side], ctx, onChange));
  append(main, h("h1", {}, "Inventory"), h("div", { class: "panes" }, built.map((b) => b.el)));
  await Promise.all(built.map((b) => b.load()));
  return {
    events: ["cloud", "task"],
    async refresh(notes) {
      // an inventory snapshot arrives as a finished refresh task or a cloud change
      if (notes.some((n) => n.type === "cloud")) await Promise.all(built.map((b) => b.load()));
      else if (notes.some((n) => n.type === "task")) {
        const fresh = (await get("/clouds?limit=500")).items;
        const changed = built.filter((b) => {
          const before = clouds.find((c) => c.id === b.cloudId());
          const after = fresh.find((c) => c.id === b.cloudId());
          return after && before && after.inventory_at !== before.inventory_at;
        });
        clouds.splice(0, clouds.length, ...fresh);
        await Promise.all(changed.map((b) => b.load()));
      }
    },
  };
}
