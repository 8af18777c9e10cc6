/* Builds form fields for trainer config fields from the config's JSON schema (the one the
 * API validates with): enums become selects, booleans checkboxes, numbers text inputs with
 * their range in the help line. Each field is checked against the schema as it is left, so
 * mistakes show before the form is sent. Used by the New run form and by the base config
 * of the New grid form.
 */

import { el } from "./dom.js";
import { fieldLabel, label } from "./format.js";
import { kind, problem, rangeText } from "./schema.js";

export { kind };

export const GROUPS = [
  ["Experiment", ["dataset", "activation", "lr_ratio", "augmentation", "seed"]],
  ["Optimisation", ["epochs", "batch_size", "lr", "momentum", "weight_decay"]],
  ["Model and precision", ["width", "leaky_relu_slope", "normalize", "precision", "compile"]],
  [
    "Augmentation details (used by crop + flip + blur + colour)",
    ["blur_sigma_min", "blur_sigma_max", "blur_prob", "jitter_brightness", "jitter_contrast", "jitter_saturation", "jitter_hue"],
  ],
  ["Smoke runs", ["train_limit", "test_limit"]],
];

function defaultText(name, prop) {
  if (prop.default === undefined) return "";
  if (typeof prop.default === "boolean") return prop.default ? "on" : "off";
  return label(name, prop.default);
}

/** Parse what was typed into the value to send: numbers when they parse, else the raw
 * text (so the API answers 422 naming the field and the text stays in the box). */
export function parse(prop, raw) {
  const k = kind(prop);
  if (k === "bool") return Boolean(raw);
  if (k === "int" || k === "float") {
    const text = String(raw).trim();
    if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return Number(text);
    return text;
  }
  return raw;
}

/**
 * Build the fields into `container`.
 * options: {prefix, values: {field: value}, skip: [fields], groups: bool}
 * Returns a controller: values(), set(values), setErrors(list), clearErrors(),
 * setDisabled(name, disabled, note), fields (name -> {input, error}).
 */
export function build(container, schema, options = {}) {
  const prefix = options.prefix || "cfg";
  const props = schema.properties || {};
  const skip = new Set(options.skip || []);
  const fields = {};
  const names = Object.keys(props).filter((n) => !skip.has(n));

  const grouped = [];
  const seen = new Set();
  for (const [title, members] of GROUPS) {
    const list = members.filter((n) => names.includes(n));
    list.forEach((n) => seen.add(n));
    if (list.length) grouped.push([title, list]);
  }
  const rest = names.filter((n) => !seen.has(n));
  if (rest.length) grouped.push(["Other", rest]);

  for (const [title, list] of grouped) {
    const grid = el("div", { class: "form-grid" });
    for (const name of list) grid.append(field(name, props[name]));
    container.append(el("fieldset", {}, el("legend", {}, title), grid));
  }

  function field(name, prop) {
    const id = `${prefix}-${name}`;
    const k = kind(prop);
    const help = [prop.description, `Default: ${defaultText(name, prop)}.`, rangeText(prop) && `Range: ${rangeText(prop)}.`]
      .filter(Boolean)
      .join(" ");
    const error = el("div", { class: "err", id: `${id}-err`, role: "alert", hidden: true });
    const helpEl = el("div", { class: "help", id: `${id}-help` }, help);
    const note = el("div", { class: "varied-note", hidden: true });
    const describedBy = `${id}-help ${id}-err`;
    let input;
    if (k === "enum") {
      input = el(
        "select",
        { id, name, "aria-describedby": describedBy },
        prop.enum.map((v) => el("option", { value: v }, v === label(name, v) ? v : `${label(name, v)} (${v})`)),
      );
    } else if (k === "bool") {
      input = el("input", { type: "checkbox", id, name, "aria-describedby": describedBy });
    } else {
      const attrs = { type: "text", id, name, "aria-describedby": describedBy, autocomplete: "off", spellcheck: "false" };
      if (k === "int") attrs.inputmode = "numeric";
      if (k === "float") attrs.inputmode = "decimal";
      if (prop.examples) attrs.list = `${id}-examples`;
      input = el("input", attrs);
    }
    const children = [];
    if (k === "bool") {
      children.push(el("div", { class: "check-line" }, input, el("label", { for: id }, fieldLabel(name))));
    } else {
      children.push(el("label", { for: id }, fieldLabel(name)), input);
    }
    if (prop.examples && k !== "enum") {
      children.push(el("datalist", { id: `${id}-examples` }, prop.examples.map((v) => el("option", { value: v }))));
    }
    children.push(note, error, helpEl);
    fields[name] = { input, error, note, prop, kind: k };
    setValue(name, prop.default);
    input.addEventListener("input", () => clearError(name));
    // checked when left, not while typing: "1" on the way to "10" is no mistake
    input.addEventListener("change", () => check(name));
    return el("div", { class: `field${k === "bool" ? " check" : ""}`, "data-field": name }, children);
  }

  function setValue(name, value) {
    const f = fields[name];
    if (!f) return;
    if (f.kind === "bool") f.input.checked = Boolean(value);
    else f.input.value = value === undefined || value === null ? "" : String(value);
  }

  function set(values) {
    for (const [name, value] of Object.entries(values || {})) setValue(name, value);
  }

  function reset() {
    for (const [name, f] of Object.entries(fields)) setValue(name, f.prop.default);
    clearErrors();
  }

  /** The config to send: every enabled field; an empty number box means "the default". */
  function values() {
    const out = {};
    for (const [name, f] of Object.entries(fields)) {
      if (f.input.disabled) continue;
      if (f.kind === "bool") out[name] = f.input.checked;
      else if (f.kind === "int" || f.kind === "float") {
        if (f.input.value.trim() === "") continue;
        out[name] = parse(f.prop, f.input.value);
      } else out[name] = f.input.value;
    }
    return out;
  }

  function clearError(name) {
    const f = fields[name];
    if (!f) return;
    f.error.hidden = true;
    f.error.textContent = "";
    f.input.classList.remove("invalid");
    f.input.removeAttribute("aria-invalid");
  }

  function clearErrors() {
    for (const name of Object.keys(fields)) clearError(name);
  }

  /** Show an error beside its field; false when no such field is here. */
  function setError(name, message) {
    const f = fields[name];
    if (!f) return false;
    f.error.hidden = false;
    f.error.textContent = f.error.textContent ? `${f.error.textContent}; ${message}` : message;
    f.input.classList.add("invalid");
    f.input.setAttribute("aria-invalid", "true");
    return true;
  }

  /** Check one field against the schema; shows and returns the message, or null. */
  function check(name) {
    const f = fields[name];
    if (!f || f.input.disabled) return null;
    if ((f.kind === "int" || f.kind === "float") && f.input.value.trim() === "") return null;
    const value = f.kind === "bool" ? f.input.checked : parse(f.prop, f.input.value);
    const msg = problem(f.prop, value);
    clearError(name);
    if (msg) setError(name, msg);
    return msg;
  }

  /** Check every field; the names of those with a problem. */
  function checkAll() {
    return Object.keys(fields).filter((name) => check(name));
  }

  function setDisabled(name, disabled, noteText) {
    const f = fields[name];
    if (!f) return;
    f.input.disabled = disabled;
    f.note.hidden = !disabled;
    f.note.textContent = disabled ? noteText || "" : "";
  }

  return { fields, values, set, reset, setError, clearErrors, setDisabled, check, checkAll };
}
