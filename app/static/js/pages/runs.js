/* Runs page: a server-sorted, server-filtered, paginated table of runs with a search box,
 * tag filter and user-chosen columns, refreshed live. Filters, sort and columns live in the
 * URL (a view can be shared and reloaded); the CSV export follows them. Selected runs (or
 * every run the filters match) take bulk actions (runs_bulk.js); "Group & compare" sums up
 * the filtered runs (runs_groups.js). */

import { api } from "../lib/api.js";
import { byId, clear, debounce, el, poll } from "../lib/dom.js";
import { configValue, duration, eta, factorLine, label, num, pct, when } from "../lib/format.js";
import { pageData } from "../lib/page.js";
import { ACTIVE, RETRYABLE, STATUSES, badge, progressBar, runAction } from "../lib/status.js";
import { initBulk } from "./runs_bulk.js";
import { allColumns, csvColumns, isDefault, loadChoice, renderChooser } from "./runs_columns.js";
import { groupsParams, initGroups, updateGroups } from "./runs_groups.js";

const PAGE = 50;
const REFRESH_MS = 3000;

// Filters are query parameters of GET /api/runs.
const FILTERS = [
  { key: "q", title: "Search", placeholder: "name, note, tag, config…", wide: true },
  { key: "tag", title: "Tag", placeholder: "any" },
  { key: "status", title: "Status", options: STATUSES },
  { key: "dataset", title: "Dataset", options: ["cifar10", "fashion_mnist", "digits"] },
  { key: "activation", title: "Activation", options: ["relu", "leaky_relu", "tanh", "sigmoid"] },
  { key: "lr_ratio", title: "LR ratio", placeholder: "5:4:1" },
  { key: "augmentation", title: "Augmentation", options: ["none", "crop_flip", "crop_flip_blur_color"] },
  { key: "seed", title: "Seed", placeholder: "any", numeric: true },
  { key: "sweep_id", title: "Grid", placeholder: "any", numeric: true },
];

const COLUMNS = allColumns(pageData.schema);
let shown = loadChoice(COLUMNS, new URLSearchParams(location.search).get("cols"));
// numbers and times sort best/newest first on the first click
const DESC_FIRST = new Set(["id", "progress", "final_test_acc", "best_test_acc", "duration_seconds", "queued_at", "started_at", "finished_at"]);

/** What the table shows: the run's id and checkbox first, the phone summary, the chosen
 * columns, the actions last. */
function visibleColumns() {
  const byKey = new Map(COLUMNS.map((c) => [c.key, c]));
  return [
    { key: "select", title: "", label: false },
    { key: "id", title: "Run", sort: "id" },
    { key: "factors", title: "Factors", cls: "show-sm", label: false },
    ...shown.map((k) => byKey.get(k)),
    { key: "actions", title: "", label: false },
  ];
}

// ------------------------------------------------------------------ state (mirrored in the URL)

const url = new URLSearchParams(location.search);
const state = {
  sort: url.get("sort") || "-id",
  offset: Math.max(0, parseInt(url.get("offset") || "0", 10) || 0),
  filters: {},
};
for (const f of FILTERS) if (url.get(f.key)) state.filters[f.key] = url.get(f.key);
const selected = new Set();
// Every run the filters match is selected (across pages), not only the ids in `selected`.
let matching = false;
let lastPage = null;

function query() {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(state.filters)) if (v !== "") q.set(k, v);
  q.set("sort", state.sort);
  q.set("limit", PAGE);
  q.set("offset", state.offset);
  return q;
}

/** The filters as GET /api/runs takes them: a URLSearchParams. */
function filterParams() {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(state.filters)) if (v !== "") q.set(k, v);
  return q;
}

/** The filters as POST /api/runs/bulk takes them: a JSON object. */
function filterBody() {
  const out = {};
  for (const f of FILTERS) {
    const v = state.filters[f.key];
    if (v === undefined || v === "") continue;
    out[f.key] = f.key === "status" ? [v] : f.numeric ? Number(v) : v;
  }
  return out;
}

function syncUrl() {
  const q = query();
  q.delete("limit");
  if (state.offset === 0) q.delete("offset");
  if (state.sort === "-id") q.delete("sort");
  if (!isDefault(shown)) q.set("cols", shown.join(","));
  for (const [k, v] of groupsParams()) q.set(k, v);
  const s = q.toString();
  history.replaceState(null, "", s ? `?${s}` : location.pathname);
  // the export follows the view: these filters, this order, the shown columns
  const csv = filterParams();
  csv.set("sort", state.sort);
  csv.set("columns", csvColumns(COLUMNS, shown).join(","));
  byId("export-view").href = `/api/runs.csv?${csv}`;
}

function setSort(sort) {
  state.sort = sort;
  state.offset = 0;
  renderHead();
  renderSortSelect();
  refresh();
}

// ------------------------------------------------------------------ filter bar

function renderFilters() {
  const bar = clear(byId("runs-filters"));
  for (const f of FILTERS) {
    const id = `filter-${f.key}`;
    let control;
    if (f.options) {
      control = el(
        "select",
        { id, "data-filter": f.key },
        el("option", { value: "" }, "all"),
        f.options.map((v) => el("option", { value: v, selected: state.filters[f.key] === v }, label(f.key, v))),
      );
      control.addEventListener("change", () => setFilter(f.key, control.value));
    } else {
      control = el("input", {
        type: "search",
        id,
        value: state.filters[f.key] || "",
        placeholder: f.placeholder,
        inputmode: f.numeric ? "numeric" : "text",
        autocomplete: "off",
        "data-filter": f.key,
      });
      control.addEventListener(
        "input",
        debounce(() => {
          if (!control.isConnected) return; // the filters were redrawn (cleared) meanwhile
          const value = control.value.trim();
          // ids and seeds are whole numbers: don't ask the API about anything else
          const bad = f.numeric && value !== "" && !/^\d+$/.test(value);
          control.classList.toggle("invalid", bad);
          control.title = bad ? "a whole number" : "";
          if (!bad) setFilter(f.key, value);
        }, 400),
      );
    }
    bar.append(el("div", { class: `field${f.wide ? " wide" : ""}` }, el("label", { for: id }, f.title), control));
  }
  // sorting for narrow screens, where the table has no header row
  const sortSelect = el("select", { id: "sort-select" });
  sortSelect.addEventListener("change", () => setSort(sortSelect.value));
  bar.append(el("div", { class: "field show-sm-flex" }, el("label", { for: "sort-select" }, "Sort"), sortSelect));
  renderSortSelect();
  filtersChanged();
}

function renderSortSelect() {
  const select = clear(byId("sort-select"));
  for (const col of visibleColumns().filter((c) => c.sort)) {
    const first = DESC_FIRST.has(col.sort) ? [`-${col.sort}`, `${col.sort}`] : [col.sort, `-${col.sort}`];
    for (const s of first) {
      const arrow = s.startsWith("-") ? "↓" : "↑";
      select.append(el("option", { value: s, selected: s === state.sort }, `${col.title} ${arrow}`));
    }
  }
}

function setFilter(key, value) {
  if (value === "") delete state.filters[key];
  else state.filters[key] = value;
  state.offset = 0;
  matching = false; // "all matching" meant the old filters
  selectionChanged();
  const control = byId(`filter-${key}`);
  if (control && control.value !== value) control.value = value;
  filtersChanged();
  refresh();
}

function filtersChanged() {
  const n = Object.keys(state.filters).length;
  byId("clear-filters").hidden = !n;
  byId("filters-count").textContent = n ? ` (${n} active)` : "";
}

// ------------------------------------------------------------------ header

function renderHead() {
  const head = clear(byId("runs-head"));
  for (const col of visibleColumns()) {
    const th = el("th", { class: [`c-${col.key.replace(/\./g, "-")}`, col.cls, col.num ? "num" : ""].filter(Boolean).join(" "), scope: "col" });
    if (col.key === "select") {
      const all = el("input", { type: "checkbox", id: "select-page", "aria-label": "Select all runs on this page" });
      all.addEventListener("change", () => {
        for (const box of document.querySelectorAll("#runs-body input[data-run]")) {
          box.checked = all.checked;
          toggle(Number(box.dataset.run), all.checked);
        }
      });
      th.append(all);
    } else if (col.sort) {
      th.classList.add("sortable");
      const active = state.sort.replace(/^-/, "") === col.sort;
      const desc = state.sort.startsWith("-");
      th.setAttribute("aria-sort", active ? (desc ? "descending" : "ascending") : "none");
      const onclick = () => {
        if (active) setSort(desc ? col.sort : `-${col.sort}`);
        else setSort(DESC_FIRST.has(col.sort) ? `-${col.sort}` : col.sort);
      };
      th.append(
        el(
          "button",
          { type: "button", title: `Sort by ${col.title.toLowerCase()}`, "data-sort": col.sort, onclick },
          col.title,
          el("span", { class: "arrow", "aria-hidden": "true", text: active ? (desc ? "▼" : "▲") : "" }),
        ),
      );
    } else {
      th.textContent = col.title;
    }
    head.append(th);
  }
}

// ------------------------------------------------------------------ rows

function toggle(id, on) {
  if (on) selected.add(id);
  else selected.delete(id);
  if (!on) matching = false; // one run left out: the selection is the ids again
  const row = document.querySelector(`#runs-body tr[data-run="${id}"]`);
  if (row) row.classList.toggle("selected", on);
  selectionChanged();
}

/** How many runs are selected: every match of the filters, or the ids picked. */
function selectedCount() {
  return matching && lastPage ? lastPage.total : selected.size;
}

function selectionChanged() {
  const n = selectedCount();
  const btn = byId("compare-btn");
  btn.disabled = selected.size === 0;
  btn.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
  byId("clear-sel").hidden = n === 0;
  byId("bulk-bar").hidden = n === 0;
  const filtered = Object.keys(state.filters).length > 0;
  const runs = (k) => `${k.toLocaleString("en")} run${k === 1 ? "" : "s"}`;
  byId("bulk-count").textContent = matching
    ? `All ${runs(n)}${filtered ? " matching the filters" : ""} selected`
    : `${runs(n)} selected`;
  // the whole page is picked and there is more: offer every run the filters match
  const page = lastPage ? lastPage.items : [];
  const more = !matching && lastPage && lastPage.total > n && page.length > 0 && page.every((r) => selected.has(r.id));
  const offer = byId("select-matching");
  offer.hidden = !more;
  if (more) offer.textContent = `Select all ${runs(lastPage.total)}${filtered ? " matching the filters" : ""}`;
}

/** What a bulk action acts on (runs_bulk.js). */
function bulkTarget() {
  if (matching && lastPage) {
    const filtered = Object.keys(state.filters).length > 0;
    return {
      filter: filterBody(),
      count: lastPage.total,
      what: filtered ? "Every run that matches the filters, on every page." : "Every run, on every page.",
    };
  }
  const ids = [...selected].sort((a, b) => a - b);
  const shownIds = ids.slice(0, 20).map((i) => `#${i}`);
  const rest = ids.length > 20 ? ` and ${ids.length - 20} more` : "";
  return { ids, count: ids.length, what: `Runs ${shownIds.join(", ")}${rest}.` };
}

function bulkDone(action, answer) {
  if (action === "delete") {
    for (const r of answer.results) if (r.outcome === "done") selected.delete(r.id);
    if (matching) {
      matching = false;
      selected.clear();
    }
  }
  selectionChanged();
  refresh();
}

function tagChips(tags) {
  return (tags || []).map((t) =>
    el("button", { type: "button", class: "tag", title: `Show runs tagged ${t}`, "data-tag": t, onclick: () => setFilter("tag", t) }, t),
  );
}

function cell(run, col) {
  const c = run.config || {};
  if (col.field) return c[col.field] === undefined ? "—" : configValue(col.field, c[col.field]);
  switch (col.key) {
    case "select":
      return el("input", {
        type: "checkbox",
        "data-run": run.id,
        checked: matching || selected.has(run.id),
        "aria-label": `Select run ${run.id}`,
        onchange: (e) => toggle(run.id, e.target.checked),
      });
    case "id":
      return el("a", { href: `/runs/${run.id}` }, `#${run.id}`);
    case "name":
      return run.name ? el("a", { href: `/runs/${run.id}`, class: "run-name" }, run.name) : "";
    case "status":
      return badge(run.status, run.stalled_seconds);
    case "tags":
      return (run.tags || []).length ? el("span", { class: "tags" }, tagChips(run.tags)) : "";
    case "note":
      return run.note ? el("span", { class: "note-cell", title: run.note }, run.note) : "";
    case "factors":
      return factorLine(c);
    case "dataset":
    case "activation":
    case "augmentation":
      return label(col.key, c[col.key]);
    case "lr_ratio":
      return c.lr_ratio ?? "—";
    case "seed":
      return c.seed ?? "—";
    case "sweep_id":
      return run.sweep_id ? el("a", { href: `/sweeps/${run.sweep_id}` }, `#${run.sweep_id}`) : "—";
    case "progress": {
      const done = run.epochs_done ?? 0;
      const total = run.epochs_total ?? c.epochs ?? 0;
      return el(
        "div",
        { class: "nowrap epochs", title: `${done} of ${total} epochs` },
        el("span", { class: "small" }, `${done}/${total}`),
        progressBar(run.progress ?? (total ? done / total : 0), { small: true }),
      );
    }
    case "final_test_acc":
    case "best_test_acc":
      return pct(run[col.key]);
    case "best_epoch":
    case "attempts":
      return num(run[col.key]);
    case "images_per_second": // the header says "Images/s": the number alone keeps it narrow
      return Number.isFinite(run.images_per_second) ? num(Math.round(run.images_per_second)) : "—";
    case "seconds_per_epoch":
      return run.epochs_done ? `${num((run.duration_seconds || 0) / run.epochs_done, 3)} s` : "—";
    case "duration_seconds":
      return duration(run.duration_seconds);
    case "eta_seconds":
      return ACTIVE.has(run.status) ? eta(run.eta_seconds) : "—";
    case "queued_at":
    case "started_at":
    case "finished_at":
      return when(run[col.key]);
    case "worker":
      return run.worker || "—";
    case "actions":
      return actions(run);
    default:
      return "";
  }
}

function actions(run) {
  const act = (name, text, cls) =>
    el(
      "button",
      {
        type: "button",
        class: `btn sm ${cls || ""}`,
        "data-action": name,
        onclick: async () => {
          if (await runAction(name, run.id)) {
            if (name === "delete") toggle(run.id, false);
            refresh();
          }
        },
      },
      text,
    );
  const out = [];
  if (ACTIVE.has(run.status)) out.push(act("cancel", "Cancel", "danger"));
  if (RETRYABLE.has(run.status)) out.push(act("retry", "Retry"));
  if (!ACTIVE.has(run.status)) out.push(act("delete", "Delete", "danger"));
  return el("div", { class: "actions-row" }, out);
}

function renderRows(page) {
  const body = clear(byId("runs-body"));
  const cols = visibleColumns();
  for (const run of page.items) {
    const picked = matching || selected.has(run.id);
    const tr = el("tr", { "data-run": run.id, "data-status": run.status, class: picked ? "selected" : "" });
    if (run.error) tr.title = `Error: ${run.error}`;
    for (const col of cols) {
      const classes = [`c-${col.key.replace(/\./g, "-")}`, col.cls, col.num ? "num" : ""];
      const attrs = { class: classes.filter(Boolean).join(" ") };
      if (col.label !== false) attrs["data-label"] = col.title; // shown on phones
      tr.append(el("td", attrs, cell(run, col)));
    }
    body.append(tr);
  }
  if (!page.items.length) {
    body.append(el("tr", {}, el("td", { colspan: cols.length, class: "muted" }, "No runs match these filters.")));
  }
  const pageBox = byId("select-page");
  if (pageBox) pageBox.checked = page.items.length > 0 && (matching || page.items.every((r) => selected.has(r.id)));
}

function renderPager(page) {
  const pager = clear(byId("pager"));
  const total = page.total;
  const first = total ? page.offset + 1 : 0;
  const last = page.offset + page.items.length;
  const pages = Math.max(1, Math.ceil(total / PAGE));
  const current = Math.floor(page.offset / PAGE) + 1;
  const go = (offset) => {
    state.offset = Math.max(0, Math.min(offset, (pages - 1) * PAGE));
    refresh();
  };
  const btn = (text, enabled, offset, name) =>
    el("button", { type: "button", class: "btn sm", disabled: !enabled, onclick: () => go(offset), "data-pager": name }, text);
  pager.append(
    el("span", { class: "muted small", id: "runs-count" }, `${first}–${last} of ${total.toLocaleString()} runs`),
    el("span", { class: "spacer" }),
    btn("« First", current > 1, 0, "first"),
    btn("‹ Prev", current > 1, page.offset - PAGE, "prev"),
    el("span", { class: "small nowrap" }, `page ${current} of ${pages}`),
    btn("Next ›", current < pages, page.offset + PAGE, "next"),
    btn("Last »", current < pages, (pages - 1) * PAGE, "last"),
  );
}

// ------------------------------------------------------------------ refresh

let inflight = null;
async function refresh() {
  syncUrl();
  if (inflight) inflight.abort();
  const ctrl = new AbortController();
  inflight = ctrl;
  const errBox = byId("runs-error");
  let page;
  try {
    page = await api(`/api/runs?${query()}`, { signal: ctrl.signal });
  } catch (e) {
    if (e.name === "AbortError" || e.status === 401) return;
    errBox.hidden = false;
    errBox.textContent = `Could not load runs: ${e.message}`;
    return;
  } finally {
    if (inflight === ctrl) inflight = null;
  }
  errBox.hidden = true;
  if (page.total > 0 && page.offset >= page.total) {
    // the page we were on vanished (deletions): go to the last one
    state.offset = Math.max(0, (Math.ceil(page.total / PAGE) - 1) * PAGE);
    return refresh();
  }
  const empty = page.total === 0 && !Object.keys(state.filters).length;
  byId("runs-empty").hidden = !empty;
  byId("runs-panel").hidden = empty;
  byId("groups-box").hidden = empty;
  lastPage = page;
  if (matching) for (const run of page.items) selected.add(run.id);
  renderRows(page);
  renderPager(page);
  selectionChanged();
  updateGroups(filterParams());
  byId("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function columnsChanged(keys) {
  shown = keys;
  renderHead();
  renderSortSelect();
  syncUrl();
  if (lastPage) renderRows(lastPage);
}

byId("compare-btn").addEventListener("click", () => {
  const ids = [...selected].sort((a, b) => a - b);
  if (ids.length) location.href = `/compare?run_ids=${ids.join(",")}`;
});
byId("select-matching").addEventListener("click", () => {
  matching = true;
  selectionChanged();
});
byId("clear-sel").addEventListener("click", () => {
  matching = false;
  for (const id of [...selected]) toggle(id, false);
  selectionChanged();
  for (const box of document.querySelectorAll("#runs-body input[type=checkbox]")) box.checked = false;
  const pageBox = byId("select-page");
  if (pageBox) pageBox.checked = false;
});
byId("clear-filters").addEventListener("click", () => {
  state.filters = {};
  state.offset = 0;
  matching = false;
  selectionChanged();
  renderFilters();
  refresh();
});

renderFilters();
renderChooser(byId("columns-panel"), COLUMNS, shown, columnsChanged);
initBulk({ target: bulkTarget, done: bulkDone });
initGroups({ schema: pageData.schema, params: url, filters: filterParams, changed: syncUrl });
// phones: the filters fold away until asked for (unless some are set)
if (window.innerWidth < 700 && !Object.keys(state.filters).length) byId("filters-box").open = false;
renderHead();
refresh();
poll(() => refresh(), REFRESH_MS);
