/* The runs table's columns: every one the user can show (run facts, results, throughput and
 * any config field), which are shown and in what order, remembered in localStorage across
 * visits (a shared link's `cols=` wins), the chooser panel that edits that choice, and the
 * CSV columns (GET /api/runs.csv?columns=) that export what is shown. */

import { breakable, el, clear } from "../lib/dom.js";
import { fieldLabel } from "../lib/format.js";

const STORE = "resnet-lab.runs.columns.v1";

// key: column id; sort: the API's sort key (none = the server cannot sort on it);
// num: right-aligned; group: where the chooser lists it; csv: the CSV columns it exports as
// (its own key when not given; none for the ETA, which is a guess of the moment).
const BASE = [
  { key: "name", title: "Name", group: "Run" },
  { key: "status", title: "Status", sort: "status", group: "Run" },
  { key: "tags", title: "Tags", group: "Run" },
  { key: "dataset", title: "Dataset", sort: "dataset", group: "Factors" },
  { key: "activation", title: "Activation", sort: "activation", group: "Factors" },
  { key: "lr_ratio", title: "LR ratio", sort: "lr_ratio", group: "Factors" },
  { key: "augmentation", title: "Augmentation", sort: "augmentation", group: "Factors" },
  { key: "seed", title: "Seed", sort: "seed", num: true, group: "Factors" },
  { key: "sweep_id", title: "Grid", sort: "sweep_id", group: "Run" },
  { key: "progress", title: "Epochs", sort: "progress", group: "Progress", csv: ["epochs_done", "epochs_total"] },
  { key: "final_test_acc", title: "Final acc.", sort: "final_test_acc", num: true, group: "Results" },
  { key: "best_test_acc", title: "Best acc.", sort: "best_test_acc", num: true, group: "Results" },
  { key: "best_epoch", title: "Best epoch", sort: "best_epoch", num: true, group: "Results" },
  { key: "images_per_second", title: "Images/s", num: true, group: "Throughput" },
  { key: "seconds_per_epoch", title: "s/epoch", num: true, group: "Throughput" },
  { key: "duration_seconds", title: "Duration", sort: "duration_seconds", num: true, group: "Progress", csv: ["train_seconds"] },
  { key: "eta_seconds", title: "ETA", num: true, group: "Progress", csv: [] },
  { key: "queued_at", title: "Queued", sort: "queued_at", group: "Times" },
  { key: "started_at", title: "Started", sort: "started_at", group: "Times" },
  { key: "finished_at", title: "Finished", sort: "finished_at", group: "Times" },
  { key: "attempts", title: "Attempts", sort: "attempts", num: true, group: "Run" },
  { key: "worker", title: "Worker", group: "Run" },
  { key: "note", title: "Note", group: "Run" },
];
// They fit a 1400 px screen beside the run's id and actions; images/s and the times are a
// tick away under Columns.
const SHOWN_BY_DEFAULT = [
  "name", "tags", "status", "dataset", "activation", "lr_ratio", "augmentation", "seed",
  "sweep_id", "progress", "final_test_acc", "best_test_acc", "eta_seconds",
];

/** Every column the user may show: the fixed ones, then each config field not already one. */
export function allColumns(schema) {
  const taken = new Set(BASE.map((c) => c.key));
  const config = Object.entries((schema && schema.properties) || {})
    .filter(([name]) => !taken.has(name))
    .map(([name, prop]) => ({
      key: `config.${name}`,
      field: name,
      title: fieldLabel(name),
      num: prop.type === "integer" || prop.type === "number",
      group: "Config",
      csv: [name],
    }));
  return [...BASE, ...config];
}

/** The shown columns in order: those of a shared link (`cols=`, comma-separated) if given,
 * else from localStorage, else the default; unknown keys dropped. */
export function loadChoice(columns, fromUrl = null) {
  const known = new Set(columns.map((c) => c.key));
  if (fromUrl !== null) return fromUrl.split(",").filter((k) => known.has(k));
  try {
    const saved = JSON.parse(localStorage.getItem(STORE) || "null");
    if (Array.isArray(saved)) return saved.filter((k) => known.has(k));
  } catch (e) {
    // a broken entry: fall back to the default
  }
  return SHOWN_BY_DEFAULT.filter((k) => known.has(k));
}

/** Whether `keys` is the default choice (a link need not name it). */
export function isDefault(keys) {
  return keys.join(",") === SHOWN_BY_DEFAULT.join(",");
}

/** The CSV columns that export the shown ones: the run id first, then each shown column's. */
export function csvColumns(columns, keys) {
  const byKey = new Map(columns.map((c) => [c.key, c]));
  const out = ["run_id"];
  for (const key of keys) {
    for (const name of byKey.get(key)?.csv ?? [key]) if (!out.includes(name)) out.push(name);
  }
  return out;
}

function saveChoice(keys) {
  try {
    localStorage.setItem(STORE, JSON.stringify(keys));
  } catch (e) {
    // private mode: the choice lasts for this visit only
  }
}

/**
 * The chooser: a checkbox per column (shown or not) with up/down buttons for the order of
 * the shown ones. onChange(keys) gets the new order, already saved.
 */
export function renderChooser(box, columns, shown, onChange) {
  const byKey = new Map(columns.map((c) => [c.key, c]));
  const set = (keys) => {
    saveChoice(keys);
    onChange(keys);
    renderChooser(box, columns, keys, onChange);
  };
  clear(box);
  const order = el("ol", { class: "col-order", "aria-label": "Shown columns, in order" });
  shown.forEach((key, i) => {
    const col = byKey.get(key);
    const move = (delta) => {
      const keys = shown.slice();
      keys.splice(i, 1);
      keys.splice(i + delta, 0, key);
      set(keys);
    };
    order.append(
      el(
        "li",
        { "data-col": key },
        el("span", { class: "col-name" }, breakable(col.title)),
        el("button", { type: "button", class: "btn sm", "aria-label": `Move ${col.title} left`, disabled: i === 0, onclick: () => move(-1) }, "←"),
        el("button", { type: "button", class: "btn sm", "aria-label": `Move ${col.title} right`, disabled: i === shown.length - 1, onclick: () => move(1) }, "→"),
        el("button", { type: "button", class: "btn sm", "aria-label": `Hide ${col.title}`, onclick: () => set(shown.filter((k) => k !== key)) }, "×"),
      ),
    );
  });
  const groups = new Map();
  for (const col of columns) {
    if (!groups.has(col.group)) groups.set(col.group, []);
    groups.get(col.group).push(col);
  }
  const pick = el("div", { class: "col-groups" });
  for (const [group, cols] of groups) {
    pick.append(
      el(
        "fieldset",
        { class: "col-group" },
        el("legend", {}, group),
        cols.map((col) => {
          const id = `col-${col.key.replace(/\./g, "-")}`;
          const box = el("input", { type: "checkbox", id, checked: shown.includes(col.key), "data-col": col.key });
          box.addEventListener("change", () => set(box.checked ? [...shown, col.key] : shown.filter((k) => k !== col.key)));
          return el("label", { for: id, class: "col-pick" }, box, col.field ? el("code", {}, breakable(col.field)) : col.title);
        }),
      ),
    );
  }
  box.append(
    el("p", { class: "small muted" }, "Shown, in order (← → to move, × to hide):"),
    order,
    pick,
    el("div", { class: "row" }, el("button", { type: "button", class: "btn sm", id: "cols-reset", onclick: () => set(SHOWN_BY_DEFAULT.slice()) }, "Default columns")),
  );
}
