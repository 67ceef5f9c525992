// Showing the API's validation errors (RFC 9457 problem+json, `errors[].field`) in a form.

import { ApiError } from "./api.js";
import { h, replace } from "./dom.js";

const PLAIN = [
  [/^(String should have at least 1 character|Field required)$/, () => "Required."],
  [/^String should have at least (\d+) characters$/, (m) => `At least ${m[1]} characters.`],
  [/^Value should have at least (\d+) items after validation/, (m) => `At least ${m[1]} characters.`], // SecretStr
  [/^String should have at most (\d+) characters$/, (m) => `At most ${m[1]} characters.`],
  [/^Input should be greater than or equal to (\S+)$/, (m) => `Must be at least ${m[1]}.`],
  [/^Input should be less than or equal to (\S+)$/, (m) => `Must be at most ${m[1]}.`],
  [/^Input should be greater than (\S+)$/, (m) => `Must be more than ${m[1]}.`],
  [/^Input should be a valid (integer|number)/, (m) => `Must be a ${m[1] === "integer" ? "whole " : ""}number.`],
];

/** A pydantic message in plain words; a pattern mismatch points at the field's hint. */
export function plainMessage(msg, control) {
  const text = msg.replace(/^Value error, /, "");
  if (control && control.value === "" && /^String should/.test(text)) return "Required.";
  if (/^String should match pattern/.test(text)) {
    const hint = control && document.getElementById(`${control.id}-hint`)?.textContent;
    return hint ? `Not in the expected form: ${hint.replace(/\.?$/, ".")}` : "Not in the expected form.";
  }
  for (const [pattern, say] of PLAIN) {
    const m = text.match(pattern);
    if (m) return say(m);
  }
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function clear(form, summary) {
  for (const el of form.querySelectorAll("[aria-invalid]")) {
    el.removeAttribute("aria-invalid");
    const err = document.getElementById(`${el.id}-error`);
    if (err) err.hidden = true;
  }
  summary.hidden = true;
}

function mark(control, message, apiMessage) {
  const closed = control.closest("details:not([open])");
  if (closed) closed.open = true;
  control.setAttribute("aria-invalid", "true");
  const err = document.getElementById(`${control.id}-error`);
  err.textContent = message;
  err.title = apiMessage;
  err.hidden = false;
  const described = (control.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
  if (!described.includes(err.id)) control.setAttribute("aria-describedby", [...described, err.id].join(" "));
}

/**
 * Put the API's errors beside the inputs they name (`data-field`) and list them all in
 * `summary`, which takes the focus. `exc` null clears. A 409 without field errors is shown
 * on `conflictField` (e.g. the name that is taken).
 */
export function showErrors(form, summary, exc, { title = "Not saved", conflictField } = {}) {
  clear(form, summary);
  if (!exc) return;
  let errors = exc instanceof ApiError ? exc.errors : [];
  if (exc instanceof ApiError && exc.status === 409 && !errors.length && conflictField) {
    errors = [{ field: conflictField, msg: exc.message }];
  }
  const items = errors.map((e) => {
    const control = form.querySelector(`[data-field="${CSS.escape(e.field)}"]`);
    const message = plainMessage(e.msg, control);
    if (!control || control.closest("[hidden]")) return h("li", {}, `${e.field || "request"}: ${message}`);
    mark(control, message, e.msg);
    const label = form.querySelector(`label[for="${control.id}"]`)?.textContent || e.field;
    const focus = (ev) => {
      ev.preventDefault();
      control.focus();
    };
    return h("li", {}, h("a", { href: `#${control.id}`, onclick: focus }, `${label}: ${message}`));
  });
  const heading = errors.length ? `${title}:` : `${title}: ${exc.message}`;
  replace(summary, h("p", {}, h("strong", {}, heading)), items.length ? h("ul", {}, items) : null);
  summary.hidden = false;
  summary.focus();
}
