/* New grid page: factor checkboxes, extra varied fields, seeds, base config, live estimate
 * from the speed the workers measured; POST /api/sweeps. "Reproduce the report's grid" fills
 * the report's 36 cells; "Fill a quick smoke test" makes the base config tiny. */

import { api } from "../lib/api.js";
import { build, kind as fieldKind, parse as parseField } from "../lib/configform.js";
import { showReadiness } from "../lib/datasets.js";
import { byId, clear, debounce, el, toast } from "../lib/dom.js";
import { keepDraft, takeDraft } from "../lib/draft.js";
import { timeParts } from "../lib/estimate.js";
import { fieldLabel, label } from "../lib/format.js";
import { pageData } from "../lib/page.js";
import { problem } from "../lib/schema.js";

const schema = pageData.schema;
const props = schema.properties;
const MAIN_FACTORS = ["activation", "lr_ratio", "augmentation"];
const FACTOR_VALUES = {
  activation: pageData.activations,
  lr_ratio: pageData.report_lr_ratios,
  augmentation: pageData.augmentations,
};
const FACTOR_HELP = {
  activation: "Activation wherever ReLU stands in ResNet18.",
  lr_ratio: "Lengths of the 0.1 → 0.01 → 0.001 phases, as a ratio of all epochs. The report's: 2:1:1 (baseline), 5:3:2, 5:4:1.",
  augmentation: "Training-time augmentation of the images.",
};

const form = byId("sweep-form");
const formError = byId("form-error");
const nameInput = byId("sweep-name");
const seedsInput = byId("sweep-seeds");
const estimateBox = byId("estimate");
const submit = byId("submit");
const presetNote = byId("preset-note");
let reportMode = false;

// ------------------------------------------------------------------ factor checkboxes

const factorBoxes = {};
const factorsDiv = byId("factors");
for (const factor of MAIN_FACTORS) {
  const err = el("div", { class: "err", role: "alert", hidden: true, id: `factor-${factor}-err` });
  const checks = el(
    "div",
    { class: "checks", role: "group", "aria-label": fieldLabel(factor) },
    FACTOR_VALUES[factor].map((v) =>
      el(
        "label",
        {},
        el("input", { type: "checkbox", name: `factor-${factor}`, value: v, "data-factor": factor }),
        label(factor, v),
      ),
    ),
  );
  let extra = null;
  if (factor === "lr_ratio") {
    extra = el("input", {
      type: "text",
      id: "lr-ratio-extra",
      placeholder: "more ratios, comma-separated, e.g. 3:1:1, 6:3:1",
      "aria-label": "More LR ratios, comma-separated",
      autocomplete: "off",
      style: { maxWidth: "26rem", marginTop: "0.4rem" },
    });
  }
  const box = el(
    "div",
    { class: "factor", "data-factor": factor },
    el("span", { class: "factor-name" }, fieldLabel(factor).replace(/^./, (c) => c.toUpperCase())),
    checks,
    extra,
    err,
    el("div", { class: "help" }, `${FACTOR_HELP[factor]} Tick none to use the base value.`),
  );
  factorsDiv.append(box);
  factorBoxes[factor] = { checks, extra, err };
}

// ------------------------------------------------------------------ "vary another field" rows

const extraDiv = byId("extra-factors");
const OTHER_FIELDS = Object.keys(props).filter((n) => !MAIN_FACTORS.includes(n) && n !== "seed");
const extraRows = [];

function valuesHelp(name) {
  const prop = props[name];
  if (!prop) return "";
  const kind = fieldKind(prop);
  if (kind === "enum") return `One or more of: ${prop.enum.join(", ")}.`;
  if (kind === "bool") return "true, false";
  return `${prop.description || ""} Default ${prop.default}.`;
}

function addExtraRow(field, values) {
  const used = new Set(extraRows.map((r) => r.select.value));
  const choices = OTHER_FIELDS.filter((n) => !used.has(n));
  if (!choices.length) return;
  const select = el(
    "select",
    { "aria-label": "Field to vary" },
    choices.map((n) => el("option", { value: n }, `${fieldLabel(n)} (${n})`)),
  );
  if (field) select.value = field;
  const input = el("input", {
    type: "text",
    placeholder: "values, comma-separated",
    "aria-label": "Values, comma-separated",
    autocomplete: "off",
    value: values || "",
  });
  const help = el("div", { class: "help" });
  const err = el("div", { class: "err", role: "alert", hidden: true });
  const row = { select, input, err, help };
  const remove = el("button", { type: "button", class: "btn sm", "aria-label": "Stop varying this field" }, "Remove");
  const div = el("div", { class: "extra-row" }, select, el("div", { class: "field" }, input, err, help), remove);
  row.div = div;
  const update = () => {
    help.textContent = valuesHelp(select.value);
    changed(true);
  };
  select.addEventListener("change", update);
  input.addEventListener("input", () => changed(true));
  remove.addEventListener("click", () => {
    extraRows.splice(extraRows.indexOf(row), 1);
    div.remove();
    changed(true);
  });
  help.textContent = valuesHelp(select.value);
  extraRows.push(row);
  extraDiv.append(div);
  changed(true);
  return row;
}

byId("add-factor").addEventListener("click", () => {
  const row = addExtraRow();
  if (row) row.input.focus();
});

// ------------------------------------------------------------------ base config

const cfg = build(byId("base-fields"), schema, { prefix: "base", skip: ["seed"] });
byId("base-fields").addEventListener("input", () => changed(false));
byId("base-fields").addEventListener("change", () => changed(false));

// ------------------------------------------------------------------ body

function splitList(text) {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

function parseValue(name, text) {
  const prop = props[name];
  if (!prop) return text;
  if (fieldKind(prop) === "bool") {
    if (/^(true|yes|on|1)$/i.test(text)) return true;
    if (/^(false|no|off|0)$/i.test(text)) return false;
    return text;
  }
  return parseField(prop, text);
}

/** "0,1,2" / "0-4" / "0, 3-5" -> [ints]; null when something does not parse. */
function parseSeeds(text) {
  const seeds = [];
  for (const part of splitList(text)) {
    const range = part.match(/^(\d+)\s*-\s*(\d+)$/);
    if (range) {
      const [a, b] = [Number(range[1]), Number(range[2])];
      if (b < a || b - a > 1000) return null;
      for (let s = a; s <= b; s++) seeds.push(s);
    } else if (/^\d+$/.test(part)) seeds.push(Number(part));
    else return null;
  }
  return [...new Set(seeds)];
}

function grid() {
  const g = {};
  for (const factor of MAIN_FACTORS) {
    const box = factorBoxes[factor];
    const values = [...box.checks.querySelectorAll("input:checked")].map((i) => i.value);
    if (box.extra) {
      for (const v of splitList(box.extra.value)) if (!values.includes(v)) values.push(v);
    }
    if (values.length) g[factor] = values;
  }
  for (const row of extraRows) {
    const values = splitList(row.input.value).map((v) => parseValue(row.select.value, v));
    if (values.length) g[row.select.value] = values;
  }
  return g;
}

function body() {
  const g = grid();
  const seeds = parseSeeds(seedsInput.value);
  const name = nameInput.value.trim() || (reportMode ? "report" : Object.keys(g).map(fieldLabel).join(" × ") || "grid");
  const base = cfg.values();
  if (reportMode) {
    for (const f of Object.keys(pageData.report_grid)) delete base[f];
    return { name, preset: "report", base, seeds };
  }
  return { name, base, grid: g, seeds };
}

function localCount(b) {
  if (!b.seeds) return null;
  const g = b.preset === "report" ? pageData.report_grid : b.grid;
  return Object.values(g).reduce((n, vals) => n * vals.length, 1) * b.seeds.length;
}

// ------------------------------------------------------------------ errors

function clearErrors() {
  cfg.clearErrors();
  for (const box of Object.values(factorBoxes)) {
    box.err.hidden = true;
    box.err.textContent = "";
  }
  for (const row of extraRows) {
    row.err.hidden = true;
    row.err.textContent = "";
    row.input.classList.remove("invalid");
  }
  for (const id of ["sweep-seeds", "sweep-name"]) {
    const e = byId(`${id}-err`);
    e.hidden = true;
    e.textContent = "";
    byId(id).classList.remove("invalid");
  }
  clear(formError);
  formError.hidden = true;
}

function showAt(errNode, input, msg) {
  errNode.hidden = false;
  errNode.textContent = errNode.textContent ? `${errNode.textContent}; ${msg}` : msg;
  if (input) input.classList.add("invalid");
  return true;
}

function factorError(field, msg) {
  if (factorBoxes[field]) return showAt(factorBoxes[field].err, factorBoxes[field].extra, msg);
  const row = extraRows.find((r) => r.select.value === field);
  if (row) return showAt(row.err, row.input, msg);
  return false;
}

function baseError(field, msg) {
  const placed = cfg.setError(field, msg);
  if (placed) byId("base-box").open = true;
  return placed;
}

/** Place each 422 error beside its field; return the ones with no place. */
function placeErrors(errors) {
  const varied = grid();
  const rest = [];
  for (const { path, msg } of errors) {
    const [head, second] = path;
    let placed = false;
    if (head === "seeds") placed = showAt(byId("sweep-seeds-err"), seedsInput, msg);
    else if (head === "name") placed = showAt(byId("sweep-name-err"), nameInput, msg);
    else if (head === "grid" && typeof second === "string") placed = factorError(second, msg);
    else if (head === "base" && typeof second === "string") placed = baseError(second, msg);
    if (!placed) {
      const field = [...path].reverse().find((p) => typeof p === "string" && props[p]);
      if (field) placed = field in varied ? factorError(field, msg) : baseError(field, msg);
    }
    if (!placed) rest.push(path.length ? `${path.join(".")}: ${msg}` : msg);
  }
  return rest;
}

/** Check the varied values and the base config against the schema, before any request;
 * marks each problem beside its field and returns how many there were. */
function checkLocally() {
  let count = cfg.checkAll().length;
  if (count) byId("base-box").open = true;
  for (const [field, values] of Object.entries(reportMode ? {} : grid())) {
    const prop = props[field];
    if (!prop) continue;
    for (const v of values) {
      const msg = problem(prop, v);
      if (msg) {
        factorError(field, `${JSON.stringify(v)}: ${msg}`);
        count += 1;
      }
    }
  }
  return count;
}

function showFormErrors(title, messages) {
  clear(formError);
  formError.hidden = false;
  formError.append(el("strong", {}, title), el("ul", {}, messages.map((m) => el("li", {}, m))));
}

// ------------------------------------------------------------------ live estimate

let estimateSeq = 0;
const runEstimate = debounce(async () => {
  const seq = ++estimateSeq;
  const b = body();
  if (!b.seeds || !b.seeds.length) return;
  try {
    const est = await api("/api/sweeps/estimate", { method: "POST", body: b, login: false });
    if (seq !== estimateSeq) return;
    renderEstimate(b, est);
  } catch (e) {
    if (seq !== estimateSeq) return;
    if (e.status === 401) renderEstimate(b, null, "log in to see the training time");
    else if (e.status === 422) {
      clearErrors();
      const rest = placeErrors(e.fieldErrors);
      clear(estimateBox).append(el("span", { class: "err" }, rest.length ? rest.join("; ") : "Fix the fields marked in red."));
    } else {
      clear(estimateBox).append(el("span", { class: "muted" }, `No estimate: ${e.message}`));
    }
  }
}, 350);

function renderEstimate(b, est, pending = "estimating the training time…") {
  clearErrors();
  const runs = est ? est.runs : localCount(b);
  const parts = [el("strong", { id: "estimate-runs", "data-runs": runs }, `${runs} run${runs === 1 ? "" : "s"}`)];
  const g = b.preset === "report" ? pageData.report_grid : b.grid;
  const dims = Object.entries(g).map(([f, v]) => `${v.length} ${fieldLabel(f)}`);
  if (dims.length) parts.push(` (${[...dims, `${b.seeds.length} seed${b.seeds.length === 1 ? "" : "s"}`].join(" × ")})`);
  if (est) {
    parts.push(" · ", ...timeParts(est));
  } else {
    parts.push(el("span", { class: "muted" }, ` · ${pending}`));
  }
  clear(estimateBox).append(...parts);
}

function syncDisabled() {
  const g = reportMode ? pageData.report_grid : grid();
  for (const name of Object.keys(props)) {
    if (name === "seed") continue;
    cfg.setDisabled(name, name in g, "Varied in the grid above.");
  }
}

/** Something changed; factorChange: the grid itself (leaves the report preset). */
function changed(factorChange) {
  renderBaseSummary();
  if (factorChange && reportMode) {
    reportMode = false;
    presetNote.hidden = true;
  }
  syncDisabled();
  const b = body();
  const seedsErr = byId("sweep-seeds-err");
  if (!b.seeds || !b.seeds.length) {
    showAt(seedsErr, seedsInput, "Seeds must be whole numbers such as 0,1,2 or a range 0-4.");
    seedsErr.textContent = "Seeds must be whole numbers such as 0,1,2 or a range 0-4.";
    clear(estimateBox).append(el("span", { class: "muted" }, "Enter at least one seed."));
    return;
  }
  seedsErr.hidden = true;
  seedsInput.classList.remove("invalid");
  if (!b.preset && !Object.keys(b.grid).length) {
    estimateSeq++; // drop an estimate still on its way
    clear(estimateBox).append(el("span", { class: "muted", id: "estimate-empty" }, EMPTY_GRID));
    return;
  }
  renderEstimate(b, null);
  runEstimate();
}

const EMPTY_GRID = "Tick at least one value above to vary, or press “Reproduce the report's grid”.";

function renderBaseSummary() {
  const v = cfg.values();
  const parts = [
    v.dataset !== undefined ? label("dataset", v.dataset) : null,
    v.epochs !== undefined ? `${v.epochs} epochs` : null,
    v.batch_size !== undefined ? `batch ${v.batch_size}` : null,
    v.width !== undefined ? `width ${v.width}` : null,
    v.train_limit ? `${v.train_limit} training images` : null,
  ].filter(Boolean);
  byId("base-summary").textContent = `— ${parts.join(", ")} (open to change)`;
}

factorsDiv.addEventListener("change", () => changed(true));
factorsDiv.addEventListener("input", (e) => {
  if (e.target.type === "text") changed(true);
});
seedsInput.addEventListener("input", () => changed(false));

// ------------------------------------------------------------------ report preset

function fillReport() {
  cfg.reset();
  for (const factor of MAIN_FACTORS) {
    const want = new Set(pageData.report_grid[factor] || []);
    for (const box of factorBoxes[factor].checks.querySelectorAll("input")) box.checked = want.has(box.value);
    if (factorBoxes[factor].extra) factorBoxes[factor].extra.value = "";
  }
  for (const row of [...extraRows]) row.div.remove();
  extraRows.length = 0;
  nameInput.value = "report";
  changed(true); // leaves the mode first, then:
  reportMode = true;
  presetNote.hidden = false;
  changed(false);
}
byId("report-grid").addEventListener("click", fillReport);

// ------------------------------------------------------------------ smoke-test preset

/** The same tiny base config as the New run form's smoke test: seconds per run on a CPU. */
function fillSmoke() {
  const smoke = { ...pageData.smoke };
  delete smoke.seed;
  cfg.set(smoke);
  cfg.fields.dataset.input.dispatchEvent(new Event("change"));
  byId("base-box").open = true;
  changed(false);
  toast("Base config: a quick smoke test (digits, width 8, 3 epochs on 512 images).");
}
byId("fill-smoke").addEventListener("click", fillSmoke);
showReadiness(byId("base-dataset"));

// ------------------------------------------------------------------ submit

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const b = body();
  if (!b.seeds || !b.seeds.length) {
    showAt(byId("sweep-seeds-err"), seedsInput, "Enter at least one seed, e.g. 0 or 0,1,2.");
    seedsInput.focus();
    return;
  }
  if (!b.preset && !Object.keys(b.grid).length) {
    showFormErrors("Nothing to run yet:", [EMPTY_GRID]);
    return;
  }
  if (checkLocally()) {
    showFormErrors("The grid was not started:", ["Fix the fields marked in red."]);
    const first = form.querySelector(".invalid");
    if (first) first.focus();
    return;
  }
  submit.disabled = true;
  submit.textContent = "Starting…";
  try {
    const sweep = await api("/api/sweeps", { method: "POST", body: b });
    location.href = `/sweeps/${sweep.id}`;
    return;
  } catch (e) {
    if (e.status === 422) {
      const rest = placeErrors(e.fieldErrors);
      showFormErrors("The grid was not started:", rest.length ? rest : ["Fix the fields marked in red."]);
      const first = form.querySelector(".invalid");
      if (first) first.focus();
    } else if (e.status === 401) {
      keepDraft(draft()); // the login page opens: the grid comes back after it
    } else {
      showFormErrors("The grid was not started:", [e.message]);
    }
  } finally {
    submit.disabled = false;
    submit.textContent = "Start grid";
  }
});

// ------------------------------------------------------------------ kept across a login

/** What was typed, as typed (the name and seeds too), to fill the form again. */
function draft() {
  return { ...body(), name: nameInput.value, seeds: seedsInput.value };
}

function fillFrom(d) {
  if (d.preset === "report") fillReport();
  for (const [field, values] of Object.entries(d.grid || {})) {
    const box = factorBoxes[field];
    if (!box) {
      addExtraRow(field, values.map(String).join(", "));
      continue;
    }
    const ticked = new Set();
    for (const input of box.checks.querySelectorAll("input")) {
      input.checked = values.map(String).includes(input.value);
      if (input.checked) ticked.add(input.value);
    }
    if (box.extra) box.extra.value = values.map(String).filter((v) => !ticked.has(v)).join(", ");
  }
  cfg.set(d.base || {});
  nameInput.value = d.name || "";
  seedsInput.value = d.seeds || "0";
  cfg.fields.dataset.input.dispatchEvent(new Event("change"));
  changed(false);
  const note = byId("draft-note");
  note.hidden = false;
  note.textContent = "Your grid was kept while you logged in: check it and press Start grid.";
}

const kept = takeDraft();
if (kept) fillFrom(kept);
else if (new URLSearchParams(location.search).get("preset") === "report") fillReport();
else changed(false);
