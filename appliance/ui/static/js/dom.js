// Tiny DOM helpers. Text always goes in as text nodes: nothing from the API is parsed as HTML.

/**
 * h("button", {class: "x", onclick: fn, disabled: true}, "Label", child, [more]) → element.
 * Attributes: `class`, `text`, `on<event>` handlers, booleans (true → present, false/null →
 * absent), `dataset` (object), everything else via setAttribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "text") {
      el.textContent = value;
    } else if (key === "value" && "value" in el) {
      el.value = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's children, keeping keyboard focus on the element with the same key. */
export function replace(el, ...children) {
  const focused = document.activeElement;
  const key = focused && el.contains(focused) ? focused.dataset.key : undefined;
  el.replaceChildren();
  append(el, children);
  if (key) el.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
  return el;
}

let ids = 0;
/** A fresh id for label/for and aria-describedby pairs. */
export function uid(prefix = "f") {
  ids += 1;
  return `${prefix}-${ids}`;
}

/**
 * A labelled form field: label, control, hint, and a slot for an error message.
 * `control` is an input/select/textarea element; `field` names the API field it feeds
 * (e.g. "destination.name"), so problem+json errors find their way back to it.
 */
export function field(label, control, { hint, field: apiField, wide } = {}) {
  control.id ||= uid();
  if (apiField) control.dataset.field = apiField;
  const hintEl = hint ? h("p", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  const error = h("p", { class: "error", id: `${control.id}-error`, hidden: true });
  const described = [hintEl?.id].filter(Boolean).join(" ");
  if (described) control.setAttribute("aria-describedby", described);
  const isCheck = control.type === "checkbox";
  const labelEl = h("label", { for: control.id }, label);
  return h("div", { class: `field${isCheck ? " check" : ""}${wide ? " wide" : ""}` },
    isCheck ? [control, labelEl] : [labelEl, control], hintEl, error);
}

/**
 * A table that turns into labelled cards on narrow screens.
 * columns: [{label, cell: row => node|string, class?}], rows: array.
 */
export function table(caption, columns, rows, { empty = "Nothing yet.", rowKey } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap" },
    h("table", { class: "grid" },
      h("caption", { class: caption.startsWith("!") ? "sr-only" : "" }, caption.replace(/^!/, "")),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)))),
      h("tbody", {}, rows.map((row) => h("tr", { dataset: rowKey ? { row: rowKey(row) } : {} },
        columns.map((c) => h("td", { "data-label": c.label, class: c.class }, h("span", { class: "v" }, c.cell(row)))))))));
}

export function badge(text, tone = "neutral", title) {
  return h("span", { class: `badge ${tone}`, title }, text);
}

/** A <progress> with its percentage as text beside it (and as its accessible name). */
export function progress(percent, label) {
  const known = typeof percent === "number";
  const bar = h("progress", { max: 100, "aria-label": label });
  if (known) bar.value = percent;
  return h("span", { class: "progress" }, bar,
    h("span", { class: "pct" }, known ? `${percent.toFixed(percent >= 10 ? 0 : 1)}%` : "–"));
}

/** Ask a yes/no question in the page's modal dialog; resolves true on confirm. */
export function confirmDialog(message, okLabel = "Remove") {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = message;
  document.getElementById("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}
