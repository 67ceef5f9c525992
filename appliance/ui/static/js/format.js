// Numbers, sizes, times and errors in plain words.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? Math.round(v) : v.toFixed(v >= 100 ? 0 : 1)} ${UNITS[i]}`;
}

export const rate = (bps) => (bps ? `${bytes(bps)}/s` : "–");

export function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function ago(iso) {
  if (!iso) return "never";
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  if (s < 5) return "just now";
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

/** A <time> element: the relative time as text, the exact time as title. */
export function timeEl(iso, relative = true) {
  const el = document.createElement("time");
  if (iso) {
    el.dateTime = iso;
    el.title = new Date(iso).toLocaleString();
  }
  el.textContent = relative ? ago(iso) : when(iso);
  if (relative && iso) el.dataset.relative = "";
  return el;
}

/** Keep "12 s ago" true while nothing else redraws the page. */
export function tickRelativeTimes(root = document) {
  for (const el of root.querySelectorAll("time[data-relative]")) el.textContent = ago(el.dateTime);
}

const HINTS = {
  "not-found": "The object is not there (any more). Refresh the inventory and pick it again.",
  "storage-full": "The node's transfer storage is full. Free some space or add storage to the node, then retry.",
  "quota-exceeded": "The destination has no room for it. Free some space or choose another VDC or datastore, then retry.",
  "insufficient-resources": "The destination has no room for it. Free some space or choose another VDC or datastore, then retry.",
  "cloud-auth": "The cloud refused the credentials. Fix them under Settings, then retry.",
  "cloud-unreachable": "The node cannot reach the cloud. Check the endpoint and the network, then retry.",
  "tls-untrusted": "The cloud's certificate is not trusted. Pin its thumbprint under Settings (or, for a test cloud, skip verification).",
  "tls-fingerprint-mismatch": "A certificate other than the pinned one answered. Check the endpoint; if the certificate was renewed, pin the new thumbprint.",
  "name-conflict": "An object with that name exists. Pick another name or let hcc add a suffix.",
  conflict: "An object with that name exists. Pick another name or let hcc add a suffix.",
  "source-changed": "The source changed while it was copied. Retry to copy it again.",
  "export-stalled": "The export stopped making progress. Retry; it resumes where it stopped.",
  "transfer-network": "The connection between the nodes broke. Retry; it resumes where it stopped.",
  "hash-mismatch": "Data arrived damaged more than once. Check the network between the nodes, then retry.",
  "token-expired": "The transfer's permission ran out. Retry.",
  "invalid-package": "The exported package is not a valid OVF package.",
};

/** A step or task error ({code, message, retryable}) as a sentence or two. */
export function plainError(error) {
  if (!error) return "";
  if (typeof error === "string") return error;
  const message = error.message || error.detail || error.code || "failed";
  const hint = HINTS[error.code];
  const retry = error.retryable ? " Retrying may help." : "";
  return `${message}${/[.!?]$/.test(message) ? "" : "."}${hint ? ` ${hint}` : ""}${hint ? "" : retry}`;
}

export const KIND_LABELS = {
  datacenter: "datacenter", cluster: "cluster", host: "host", resource_pool: "resource pool",
  datastore: "datastore", network: "network", folder: "folder", vm: "VM", template: "template",
  vapp: "vApp", org: "org", vdc: "VDC", catalog: "catalog", catalog_item: "catalog item",
  vapp_template: "vApp template",
};

export const kindLabel = (k) => KIND_LABELS[k] || k;

/** "VM web-01 · powered on · 2 disks, 40 GiB" */
export function objectSummary(item) {
  const bits = [`${kindLabel(item.kind)} ${item.name}`];
  if (item.power_state) bits.push(item.power_state.replace(/^powered/, "powered ").toLowerCase());
  const disks = item.disks || [];
  if (disks.length) {
    const total = disks.reduce((n, d) => n + d.capacity_bytes, 0);
    bits.push(`${disks.length} disk${disks.length > 1 ? "s" : ""}, ${bytes(total)}`);
  }
  return bits.join(" · ");
}

export const TASK_KINDS = { copy: "Copy", "inventory-refresh": "Inventory refresh" };

/** One line saying what a task does. */
export function taskSummary(task) {
  const s = task.spec || {};
  if (task.kind === "copy" && s.source && s.destination) {
    const d = s.destination;
    const where = d.catalog || d.folder || "";
    const deploy = s.deploy ? `, deploy ${s.deploy.name}` : "";
    return `${s.source.cloud}:${s.source.ref} → ${d.cloud}:${where ? `${where}/` : ""}${d.name}${deploy}`;
  }
  if (task.kind === "inventory-refresh") return `list ${s.cloud}`;
  return task.kind;
}

export const STATE_TONES = {
  running: "info", dispatched: "info", pending: "neutral", "waiting-for-node": "warn",
  succeeded: "ok", failed: "bad", cancelling: "warn", cancelled: "neutral",
  online: "ok", offline: "bad",
};
