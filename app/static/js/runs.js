/* Runs page: a server-sorted, server-filtered, paginated table of runs, refreshed live. */
"use strict";

(() => {
  const { el, api, label, pct, duration, eta, badge, progressBar, clear } = RL;
  const PAGE = 50;
  const REFRESH_MS = 3000;

  // Filters are query parameters of GET /api/runs.
  const FILTERS = [
    { key: "status", title: "Status", options: RL.STATUSES },
    { key: "dataset", title: "Dataset", options: ["cifar10", "fashion_mnist", "digits"] },
    { key: "activation", title: "Activation", options: ["relu", "leaky_relu", "tanh", "sigmoid"] },
    { key: "lr_ratio", title: "LR ratio", placeholder: "5:4:1" },
    { key: "augmentation", title: "Augmentation", options: ["none", "crop_flip", "crop_flip_blur_color"] },
    { key: "seed", title: "Seed", placeholder: "any", numeric: true },
    { key: "sweep_id", title: "Grid", placeholder: "any", numeric: true },
  ];

  // key: column id; sort: the API's sort key (none = not sortable); cls: extra classes
  const COLUMNS = [
    { key: "select", title: "", label: false },
    { key: "id", title: "Run", sort: "id" },
    { key: "status", title: "Status", sort: "status" },
    { key: "factors", title: "Factors", cls: "show-sm", label: false },
    { key: "dataset", title: "Dataset", sort: "dataset", cls: "hide-md" },
    { key: "activation", title: "Activation", sort: "activation", cls: "hide-sm" },
    { key: "lr_ratio", title: "LR ratio", sort: "lr_ratio", cls: "hide-sm" },
    { key: "augmentation", title: "Augmentation", sort: "augmentation", cls: "hide-sm" },
    { key: "seed", title: "Seed", sort: "seed", cls: "hide-sm" },
    { key: "sweep_id", title: "Grid", sort: "sweep_id" },
    { key: "progress", title: "Epochs", sort: "progress", cls: "nowrap" },
    { key: "final_test_acc", title: "Final acc.", sort: "final_test_acc", num: true },
    { key: "best_test_acc", title: "Best acc.", sort: "best_test_acc", num: true },
    { key: "duration_seconds", title: "Duration", sort: "duration_seconds", num: true },
    { key: "eta_seconds", title: "ETA", num: true },
    { key: "queued_at", title: "Queued", sort: "queued_at", cls: "hide-md nowrap" },
    { key: "actions", title: "", label: false },
  ];
  const SORTS = COLUMNS.filter((c) => c.sort);
  // numbers and times sort best/newest first on the first click
  const DESC_FIRST = new Set(["id", "progress", "final_test_acc", "best_test_acc", "duration_seconds", "queued_at"]);

  // ------------------------------------------------------------------ state (mirrored in the URL)

  const url = new URLSearchParams(location.search);
  const state = {
    sort: url.get("sort") || "-id",
    offset: Math.max(0, parseInt(url.get("offset") || "0", 10) || 0),
    filters: {},
  };
  for (const f of FILTERS) if (url.get(f.key)) state.filters[f.key] = url.get(f.key);
  const selected = new Set();

  function query() {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(state.filters)) if (v !== "") q.set(k, v);
    q.set("sort", state.sort);
    q.set("limit", PAGE);
    q.set("offset", state.offset);
    return q;
  }

  function syncUrl() {
    const q = query();
    q.delete("limit");
    if (state.offset === 0) q.delete("offset");
    if (state.sort === "-id") q.delete("sort");
    const s = q.toString();
    history.replaceState(null, "", s ? `?${s}` : location.pathname);
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
    const bar = clear(document.getElementById("runs-filters"));
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
          RL.debounce(() => {
            const value = control.value.trim();
            // ids and seeds are whole numbers: don't ask the API about anything else
            const bad = f.numeric && value !== "" && !/^\d+$/.test(value);
            control.classList.toggle("invalid", bad);
            control.title = bad ? "a whole number" : "";
            if (!bad) setFilter(f.key, value);
          }, 400),
        );
      }
      bar.append(el("div", { class: "field" }, el("label", { for: id }, f.title), control));
    }
    // sorting for narrow screens, where the table has no header row
    const sortSelect = el("select", { id: "sort-select" });
    sortSelect.addEventListener("change", () => setSort(sortSelect.value));
    bar.append(el("div", { class: "field show-sm-flex" }, el("label", { for: "sort-select" }, "Sort"), sortSelect));
    renderSortSelect();
    filtersChanged();
  }

  function renderSortSelect() {
    const select = clear(document.getElementById("sort-select"));
    for (const col of SORTS) {
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
    filtersChanged();
    refresh();
  }

  function filtersChanged() {
    const n = Object.keys(state.filters).length;
    document.getElementById("clear-filters").hidden = !n;
    document.getElementById("filters-count").textContent = n ? ` (${n} active)` : "";
  }

  // ------------------------------------------------------------------ header

  function renderHead() {
    const head = clear(document.getElementById("runs-head"));
    for (const col of COLUMNS) {
      const th = el("th", { class: [col.cls, col.num ? "num" : ""].filter(Boolean).join(" "), scope: "col" });
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
    const row = document.querySelector(`#runs-body tr[data-run="${id}"]`);
    if (row) row.classList.toggle("selected", on);
    const btn = document.getElementById("compare-btn");
    btn.disabled = selected.size === 0;
    btn.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
    document.getElementById("clear-sel").hidden = selected.size === 0;
  }

  function cell(run, col) {
    const c = run.config || {};
    switch (col.key) {
      case "select":
        return el("input", {
          type: "checkbox",
          "data-run": run.id,
          checked: selected.has(run.id),
          "aria-label": `Select run ${run.id}`,
          onchange: (e) => toggle(run.id, e.target.checked),
        });
      case "id":
        return el("a", { href: `/runs/${run.id}` }, `#${run.id}`);
      case "status":
        return badge(run.status);
      case "factors":
        return RL.factorLine(c);
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
      case "duration_seconds":
        return duration(run.duration_seconds);
      case "eta_seconds":
        return RL.ACTIVE.has(run.status) ? eta(run.eta_seconds) : "—";
      case "queued_at":
        return RL.when(run.queued_at);
      case "actions":
        return actions(run);
      default:
        return "";
    }
  }

  function actions(run) {
    const out = [];
    const act = (name, text, cls) =>
      el(
        "button",
        {
          type: "button",
          class: `btn sm ${cls || ""}`,
          "data-action": name,
          onclick: async () => {
            if (await RL.runAction(name, run.id)) {
              if (name === "delete") toggle(run.id, false);
              refresh();
            }
          },
        },
        text,
      );
    if (RL.ACTIVE.has(run.status)) out.push(act("cancel", "Cancel", "danger"));
    if (RL.RETRYABLE.has(run.status)) out.push(act("retry", "Retry"));
    if (!RL.ACTIVE.has(run.status)) out.push(act("delete", "Delete", "danger"));
    return out;
  }

  function renderRows(page) {
    const body = clear(document.getElementById("runs-body"));
    for (const run of page.items) {
      const tr = el("tr", { "data-run": run.id, "data-status": run.status, class: selected.has(run.id) ? "selected" : "" });
      if (run.error) tr.title = `Error: ${run.error}`;
      for (const col of COLUMNS) {
        const classes = [`c-${col.key}`, col.cls, col.num ? "num" : ""];
        const attrs = { class: classes.filter(Boolean).join(" ") };
        if (col.label !== false) attrs["data-label"] = col.title; // shown on phones
        tr.append(el("td", attrs, cell(run, col)));
      }
      body.append(tr);
    }
    if (!page.items.length) {
      body.append(el("tr", {}, el("td", { colspan: COLUMNS.length, class: "muted" }, "No runs match these filters.")));
    }
    const pageBox = document.getElementById("select-page");
    if (pageBox) pageBox.checked = page.items.length > 0 && page.items.every((r) => selected.has(r.id));
  }

  function renderPager(page) {
    const pager = clear(document.getElementById("pager"));
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
    const errBox = document.getElementById("runs-error");
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
    document.getElementById("runs-empty").hidden = !empty;
    document.getElementById("runs-panel").hidden = empty;
    renderRows(page);
    renderPager(page);
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  document.getElementById("compare-btn").addEventListener("click", () => {
    const ids = [...selected].sort((a, b) => a - b);
    if (ids.length) location.href = `/compare?run_ids=${ids.join(",")}`;
  });
  document.getElementById("clear-sel").addEventListener("click", () => {
    for (const id of [...selected]) toggle(id, false);
    for (const box of document.querySelectorAll("#runs-body input[type=checkbox]")) box.checked = false;
    const pageBox = document.getElementById("select-page");
    if (pageBox) pageBox.checked = false;
  });
  document.getElementById("clear-filters").addEventListener("click", () => {
    state.filters = {};
    state.offset = 0;
    renderFilters();
    refresh();
  });

  renderFilters();
  // phones: the filters fold away until asked for (unless some are set)
  if (window.innerWidth < 700 && !Object.keys(state.filters).length) {
    document.getElementById("filters-box").open = false;
  }
  renderHead();
  refresh();
  RL.poll(() => refresh(), REFRESH_MS);
})();
