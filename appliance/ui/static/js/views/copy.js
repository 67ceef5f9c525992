// The copy wizard: a source object, a destination cloud and catalog or folder, a name,
// deploy options, transfer options. The API validates (problem+json naming each field);
// its errors are shown beside the fields they name and in a summary at the top.

import { get, post } from "../api.js";
import { showErrors } from "../forms.js";
import { append, field, h, replace } from "../dom.js";
import { kindLabel, objectSummary } from "../format.js";
import { COPYABLE } from "./inventory.js";

const COPY_ERRORS = { title: "The copy cannot start", conflictField: "destination.name" };
const kindName = (c) => (c.kind === "vcd" ? "Cloud Director" : "vSphere");

function datalist(id, options) {
  return h("datalist", { id }, options.map(([value, label]) => h("option", { value }, label)));
}

async function inventoryOf(cloudId, kind) {
  if (!cloudId) return [];
  const q = kind ? `&kind=${kind}` : "";
  try {
    return (await get(`/clouds/${encodeURIComponent(cloudId)}/inventory?limit=1000${q}`)).items;
  } catch {
    return [];
  }
}

export async function render(main, ctx) {
  if (!ctx.session.can("operator")) {
    append(main, h("h1", {}, "Copy"), h("p", {}, "Starting copies needs the operator role."));
    return null;
  }
  const clouds = (await get("/clouds?limit=500")).items;
  const p = ctx.params;
  const cloudOptions = (selected) => clouds.map((c) => h("option", { value: c.id, selected: c.id === selected }, `${c.id} (${kindName(c)})`));

  const srcCloud = h("select", { name: "source-cloud" }, cloudOptions(p.get("cloud") || clouds[0]?.id));
  const srcRef = h("input", { name: "source-ref", list: "src-objects", value: p.get("ref") || "", autocomplete: "off", spellcheck: "false" });
  const srcList = h("datalist", { id: "src-objects" });
  const srcInfo = h("p", { class: "hint" });
  const firstOther = clouds.find((c) => c.id !== srcCloud.value)?.id || clouds[0]?.id;
  const dstCloud = h("select", { name: "destination-cloud" }, cloudOptions(p.get("to") || firstOther));
  const catalog = h("input", { name: "catalog", list: "dst-catalogs", autocomplete: "off" });
  const folder = h("input", { name: "folder", list: "dst-folders", autocomplete: "off" });
  const dstLists = h("div");
  const name = h("input", { name: "name", autocomplete: "off", spellcheck: "false" });
  const onConflict = h("select", { name: "on-conflict" },
    h("option", { value: "fail" }, "Stop with an error"), h("option", { value: "suffix" }, "Add -2, -3 … to the name"));
  const deploy = h("input", { type: "checkbox", name: "deploy" });
  const deployName = h("input", { name: "deploy-name", autocomplete: "off" });
  const network = h("input", { name: "network", list: "dst-networks", autocomplete: "off" });
  const powerOn = h("input", { type: "checkbox", name: "power-on", checked: true });
  const streams = h("input", { type: "number", name: "streams", value: "4", inputmode: "numeric" });
  const chunk = h("input", { type: "number", name: "chunk", value: "8", inputmode: "numeric" });
  const compress = h("input", { type: "checkbox", name: "compress" });
  const bandwidth = h("input", { type: "number", name: "bandwidth", step: "any", inputmode: "decimal" });
  const summary = h("div", { class: "alert", role: "alert", tabindex: "-1", hidden: true });
  const submit = h("button", { type: "submit" }, "Start copy");

  const catalogField = field("Catalog", catalog, { field: "destination.catalog", hint: "The catalog that receives the vApp template." });
  const folderField = field("Folder", folder, { field: "destination.folder", hint: "Datacenter/folder for the template, e.g. DC0/vm. Empty: the datacenter's VM folder." });
  const deployFields = h("div", { class: "sub" },
    field("Name of the new vApp or VM", deployName, { field: "deploy.name" }),
    field("Network", network, { field: "deploy.network", hint: "Empty: the destination's default." }),
    field("Power on after deploying", powerOn, { field: "deploy.power_on" }));
  let sourceItems = [];
  let nameTouched = false;

  async function loadSource() {
    sourceItems = (await inventoryOf(srcCloud.value)).filter((i) => COPYABLE.has(i.kind));
    replace(srcList, sourceItems.map((i) => h("option", { value: i.path }, `${kindLabel(i.kind)} · ${i.name}`)));
    describeSource();
  }

  function describeSource() {
    const item = sourceItems.find((i) => i.path === srcRef.value || i.id === srcRef.value);
    srcInfo.textContent = item ? objectSummary(item) : "Type or pick a VM, template or vApp (its path).";
    // Suggest names from the source, but never under the operator's fingers: a field that
    // has been typed in, or has focus right now, keeps what it holds.
    if (item && !nameTouched && document.activeElement !== name) name.value = item.name;
    if (item && !deployName.dataset.touched && document.activeElement !== deployName) {
      deployName.value = `${item.name}-deployed`;
    }
  }

  async function loadDestination() {
    const c = clouds.find((x) => x.id === dstCloud.value);
    const vcd = c?.kind === "vcd";
    catalogField.hidden = !vcd;
    folderField.hidden = vcd;
    const [containers, networks] = await Promise.all([
      inventoryOf(c?.id, vcd ? "catalog" : "folder"), inventoryOf(c?.id, "network")]);
    replace(dstLists,
      datalist("dst-catalogs", vcd ? containers.map((i) => [i.name, i.path]) : []),
      datalist("dst-folders", vcd ? [] : containers.filter((i) => /\/vm(\/|$)/.test(i.path)).map((i) => [i.path, i.name])),
      datalist("dst-networks", networks.map((i) => [i.name, i.path])));
    if (vcd && !catalog.value && containers.length === 1) catalog.value = containers[0].name;
  }

  function body() {
    const c = clouds.find((x) => x.id === dstCloud.value);
    const num = (el) => (el.value === "" ? undefined : Number(el.value));
    const destination = { cloud: dstCloud.value, name: name.value, on_conflict: onConflict.value };
    if (c?.kind === "vcd") {
      if (catalog.value) destination.catalog = catalog.value;
    } else if (folder.value) destination.folder = folder.value;
    const options = { streams: num(streams), chunk_mib: num(chunk), compress: compress.checked, bandwidth_mb_per_s: num(bandwidth) };
    for (const k of Object.keys(options)) if (options[k] === undefined) delete options[k];
    return {
      kind: "copy",
      source: { cloud: srcCloud.value, ref: srcRef.value.trim() },
      destination,
      deploy: deploy.checked ? { name: deployName.value, network: network.value || null, power_on: powerOn.checked } : null,
      options,
    };
  }

  async function start(event) {
    event.preventDefault();
    showErrors(form, summary, null);
    submit.disabled = true;
    submit.textContent = "Starting…";
    try {
      const task = await post("/tasks", body());
      ctx.go(`/tasks/${task.id}`);
    } catch (exc) {
      showErrors(form, summary, exc, COPY_ERRORS);
    } finally {
      submit.disabled = false;
      submit.textContent = "Start copy";
    }
  }

  srcCloud.addEventListener("change", () => { srcRef.value = ""; loadSource(); });
  srcRef.addEventListener("input", describeSource);
  name.addEventListener("input", () => { nameTouched = true; });
  deployName.addEventListener("input", () => { deployName.dataset.touched = "1"; });
  dstCloud.addEventListener("change", loadDestination);
  deploy.addEventListener("change", () => { deployFields.hidden = !deploy.checked; });
  deployFields.hidden = true;

  const form = h("form", { class: "wizard", novalidate: true, onsubmit: start, "aria-labelledby": "copy-title" },
    summary,
    h("fieldset", {}, h("legend", {}, "1. What to copy"),
      field("From cloud", srcCloud, { field: "source.cloud" }),
      field("VM, template or vApp", srcRef, { field: "source.ref", wide: true }), srcList, srcInfo),
    h("fieldset", {}, h("legend", {}, "2. Where to"),
      field("To cloud", dstCloud, { field: "destination.cloud" }),
      catalogField, folderField, dstLists,
      field("Name of the copy", name, { field: "destination.name" }),
      field("If the name is taken", onConflict, { field: "destination.on_conflict" })),
    h("fieldset", {}, h("legend", {}, "3. Deploy"),
      field("Deploy a vApp or VM from the copy", deploy), deployFields),
    h("details", { class: "options" }, h("summary", {}, "Transfer options"),
      h("div", { class: "sub" },
        field("Parallel streams", streams, { field: "options.streams", hint: "1 to 32" }),
        field("Chunk size (MiB)", chunk, { field: "options.chunk_mib", hint: "1 to 256" }),
        field("Compress chunks (zstd)", compress, { field: "options.compress" }),
        field("Bandwidth cap (MB/s)", bandwidth, { field: "options.bandwidth_mb_per_s", hint: "Empty: no cap" }))),
    h("div", { class: "actions" }, submit, h("a", { href: "#/tasks", class: "button secondary" }, "Cancel")));

  append(main, h("h1", { id: "copy-title" }, "Copy to another cloud"),
    clouds.length ? form : h("p", { class: "empty" }, "Add clouds under Settings first."));
  await Promise.all([loadSource(), loadDestination()]);
  return null;
}
