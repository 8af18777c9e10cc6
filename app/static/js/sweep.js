/* Grid page: progress, a heatmap of mean final test accuracy over two chosen factors (one
 * panel per value of a third), a status matrix of every cell, the report's table beside
 * ours (cifar10), marginal means; live through /api/sweeps/{id}/events. */
"use strict";

(() => {
  const { el, api, clear, pct, label, fieldLabel, pageData } = RL;
  const sweepId = pageData.sweep_id;
  const NONE = "";

  let sweep = null; // the summary from GET /api/sweeps/{id}
  const runs = new Map(); // run id -> run (without result)
  const axes = { x: null, y: null, panel: null };
  let baseline = ""; // "activation:relu,lr_ratio:2:1:1" or "" for the API's default
  let overlay = null; // {title, runIds}
  let stream = null;

  // ------------------------------------------------------------------ helpers

  const key = (v) => (v === null || v === undefined ? "" : String(v));

  function factorValues(factor) {
    const fromGrid = (sweep.grid && sweep.grid[factor]) || [];
    const seen = new Set(fromGrid.map(key));
    const out = fromGrid.map(key);
    for (const run of runs.values()) {
      const v = key((run.config || {})[factor]);
      if (!seen.has(v)) {
        seen.add(v);
        out.push(v);
      }
    }
    return out;
  }

  function meanStd(values) {
    const n = values.length;
    if (!n) return { n, mean: null, std: null };
    const mean = values.reduce((a, b) => a + b, 0) / n;
    const std = n > 1 ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : null;
    return { n, mean, std };
  }

  function statusCounts(list) {
    const counts = {};
    for (const r of list) counts[r.status] = (counts[r.status] || 0) + 1;
    return counts;
  }

  function fmtMean(mean, std, n) {
    if (mean === null || mean === undefined) return "—";
    const m = (mean * 100).toFixed(2);
    return std !== null && std !== undefined && n > 1 ? `${m} ± ${(std * 100).toFixed(2)}` : m;
  }

  function cellLabel(k) {
    return Object.entries(k || {}).map(([f, v]) => label(f, v)).join(" · ");
  }

  // ------------------------------------------------------------------ loading

  async function loadSummary() {
    const q = baseline ? `?baseline=${encodeURIComponent(baseline)}` : "";
    sweep = await api(`/api/sweeps/${sweepId}${q}`);
  }

  async function loadRuns() {
    const items = await RL.apiAll("/api/runs", { sweep_id: sweepId, sort: "id" });
    runs.clear();
    for (const r of items) runs.set(r.id, r);
  }

  // ------------------------------------------------------------------ header, progress

  function renderHeader() {
    document.getElementById("sweep-title").textContent = `Grid #${sweep.id}: ${sweep.name || "unnamed"}`;
    document.title = `Grid #${sweep.id} · ResNet Lab`;
    const base = sweep.base || {};
    const dataset = base.dataset || (sweep.grid && sweep.grid.dataset ? sweep.grid.dataset.join("/") : "cifar10");
    const sub = clear(document.getElementById("sweep-sub"));
    sub.append(
      [
        label("dataset", dataset),
        `factors: ${(sweep.factors || []).map(fieldLabel).join(" × ") || "none"}`,
        `seeds ${(sweep.seeds || []).join(", ")}`,
        sweep.preset ? `preset ${sweep.preset}` : null,
        `created ${RL.when(sweep.created_at)}`,
      ]
        .filter(Boolean)
        .join(" · "),
    );
  }

  function renderProgress() {
    const counts = sweep.counts || statusCounts([...runs.values()]);
    const total = sweep.total_runs || runs.size;
    const finished = (counts.succeeded || 0) + (counts.failed || 0) + (counts.cancelled || 0) + (counts.lost || 0);
    const progress = sweep.progress ?? (total ? finished / total : 0);
    clear(document.getElementById("sweep-progress-bar")).append(RL.progressBar(progress));
    document.getElementById("sweep-progress-text").textContent =
      `${finished} of ${total} runs finished (${Math.round(progress * 100)}% of the work)`;
    const stats = clear(document.getElementById("sweep-stats"));
    const active = (counts.queued || 0) + (counts.running || 0);
    stats.append(
      el("div", { class: "stat" }, el("div", { class: "label" }, "Runs"), el("div", { class: "value" }, total)),
      el("div", { class: "stat" }, el("div", { class: "label" }, "ETA"), el("div", { class: "value", id: "sweep-eta" }, active ? RL.eta(sweep.eta_seconds) : "done")),
    );
    for (const s of RL.STATUSES) {
      if (!counts[s] && (s === "lost" || s === "cancelled")) continue;
      stats.append(
        el("div", { class: "stat" }, el("div", { class: "label" }, s), el("div", { class: "value", "data-count": s }, counts[s] || 0)),
      );
    }
    renderActions(counts);
  }

  function renderActions(counts) {
    const box = clear(document.getElementById("sweep-actions"));
    const active = (counts.queued || 0) + (counts.running || 0);
    const retryable = (counts.failed || 0) + (counts.cancelled || 0) + (counts.lost || 0);
    if (active) {
      box.append(
        el("button", {
          type: "button",
          class: "btn danger",
          "data-action": "cancel-all",
          onclick: () => sweepAction("cancel", null, `Cancel all ${active} queued and running runs of this grid?`),
        }, "Cancel grid"),
      );
    }
    if (retryable) {
      box.append(
        el("button", {
          type: "button",
          class: "btn",
          "data-action": "retry-all",
          onclick: () => sweepAction("retry", null),
        }, `Retry all failed (${retryable})`),
      );
    }
    box.append(
      el("a", { class: "btn", href: `/api/sweeps/${sweepId}.csv`, download: `grid-${sweepId}.csv` }, "Export CSV"),
      el("a", { class: "btn", href: `/?sweep_id=${sweepId}` }, "Runs list"),
    );
    const done = [...runs.values()].filter((r) => r.status === "succeeded").map((r) => r.id);
    if (done.length) {
      box.append(el("a", { class: "btn", href: `/compare?run_ids=${done.slice(0, 60).join(",")}` }, "Compare finished runs"));
    }
  }

  async function sweepAction(action, runIds, question) {
    if (question && !window.confirm(question)) return;
    try {
      await api(`/api/sweeps/${sweepId}/${action}`, {
        method: "POST",
        body: runIds ? { run_ids: runIds } : undefined,
      });
      RL.toast(action === "cancel" ? "Cancel requested." : "Re-queued.");
    } catch (e) {
      if (e.status !== 401) RL.toast(e.message, "error");
    }
    await refreshAll();
  }

  // ------------------------------------------------------------------ heatmap

  function renderControls() {
    const factors = sweep.factors && sweep.factors.length ? sweep.factors : [];
    const pick = (want, taken) => (factors.includes(want) && !taken.includes(want) ? want : factors.find((f) => !taken.includes(f)) || NONE);
    if (axes.x === null) {
      axes.x = pick("lr_ratio", []);
      axes.y = pick("activation", [axes.x]);
      axes.panel = pick("augmentation", [axes.x, axes.y]);
    }
    const box = clear(document.getElementById("heatmap-controls"));
    const select = (name, text, allowNone) => {
      const id = `axis-${name}`;
      const s = el(
        "select",
        { id },
        allowNone ? el("option", { value: NONE }, "(none)") : null,
        factors.map((f) => el("option", { value: f, selected: axes[name] === f }, fieldLabel(f))),
      );
      s.value = axes[name] || NONE;
      s.addEventListener("change", () => {
        axes[name] = s.value;
        // keep the three roles distinct
        for (const other of ["x", "y", "panel"]) {
          if (other !== name && axes[other] === s.value && s.value !== NONE) axes[other] = NONE;
        }
        if (!axes.x) axes.x = factors.find((f) => f !== axes.y && f !== axes.panel) || NONE;
        renderControls();
        renderHeatmaps();
      });
      return el("div", { class: "field" }, el("label", { for: id }, text), s);
    };
    if (!factors.length) {
      box.append(el("p", { class: "muted" }, "This grid varies no factor: every run is the same cell."));
      return;
    }
    box.append(select("x", "Columns (x)", false), select("y", "Rows (y)", true), select("panel", "One panel per", true));
  }

  function renderHeatmaps() {
    const box = document.getElementById("heatmaps");
    const factors = sweep.factors || [];
    const xF = axes.x || null;
    const yF = axes.y || null;
    const pF = axes.panel || null;
    const pooled = factors.filter((f) => f !== xF && f !== yF && f !== pF);
    const note = document.getElementById("pooled-note");
    note.hidden = !pooled.length;
    note.textContent = pooled.length ? `Pooled over ${pooled.map(fieldLabel).join(", ")} (and seeds).` : "";

    const xs = xF ? factorValues(xF) : [NONE];
    const ys = yF ? factorValues(yF) : [NONE];
    const ps = pF ? factorValues(pF) : [NONE];
    const buckets = new Map();
    for (const run of runs.values()) {
      const c = run.config || {};
      const k = [pF ? key(c[pF]) : NONE, yF ? key(c[yF]) : NONE, xF ? key(c[xF]) : NONE].join("\u0000");
      if (!buckets.has(k)) buckets.set(k, []);
      buckets.get(k).push(run);
    }

    const xLabels = xs.map((v) => (xF ? label(xF, v) : "all"));
    const yLabels = ys.map((v) => (yF ? label(yF, v) : "all"));
    let lo = Infinity;
    let hi = -Infinity;
    const panels = ps.map((p) => {
      const z = [];
      const text = [];
      const hover = [];
      const empty = [];
      ys.forEach((y, yi) => {
        z.push([]);
        text.push([]);
        hover.push([]);
        xs.forEach((x, xi) => {
          const list = buckets.get([p, y, x].join("\u0000")) || [];
          const accs = list.filter((r) => r.status === "succeeded" && r.final_test_acc !== null && r.final_test_acc !== undefined).map((r) => r.final_test_acc);
          const s = meanStd(accs);
          const counts = statusCounts(list);
          const statusText = Object.entries(counts).map(([st, n]) => `${n} ${st}`).join(", ") || "no runs";
          z[yi].push(s.mean);
          text[yi].push(s.n ? `${fmtMean(s.mean, s.std, s.n)}<br>n=${s.n}` : "");
          hover[yi].push(
            `${yLabels[yi]} · ${xLabels[xi]}<br>` +
              (s.n ? `mean ${fmtMean(s.mean, s.std, s.n)}%, n=${s.n}<br>` : "") +
              statusText.replace(/[<>&]/g, ""),
          );
          if (!s.n) {
            const text = counts.running ? "running" : counts.queued ? "queued" : list.length ? statusText.split(",")[0] : "—";
            empty.push({ x: xi, y: yi, text, color: counts.failed || counts.lost ? "#a11a10" : undefined });
          }
          if (s.n) {
            lo = Math.min(lo, s.mean);
            hi = Math.max(hi, s.mean);
          }
        });
      });
      return { p, z, text, hover, empty };
    });
    if (!Number.isFinite(lo)) {
      lo = 0;
      hi = 1;
    } else if (hi - lo < 0.002) {
      lo -= 0.001;
      hi += 0.001;
    }

    // one div per panel; reuse them so Plotly.react can update in place
    const wanted = panels.map((pn) => `panel-${ps.indexOf(pn.p)}`);
    for (const child of [...box.children]) if (!wanted.includes(child.dataset.panelId) || child.dataset.axes !== `${xF}|${yF}|${pF}`) child.remove();
    // create every panel first so that each is plotted at its final width
    const wraps = panels.map((pn, i) => {
      let wrap = box.querySelector(`[data-panel-id="panel-${i}"]`);
      if (!wrap) {
        const div = el("div", { class: "chart heatmap-panel", id: `heatmap-${i}` });
        wrap = el("div", { class: "panel", dataset: { panelId: `panel-${i}`, axes: `${xF}|${yF}|${pF}` } }, div);
        box.append(wrap);
        div.style.height = `${Math.min(640, Math.max(230, 110 + 52 * ys.length))}px`;
      }
      return wrap;
    });
    panels.forEach((pn, i) => {
      const div = wraps[i].querySelector(".heatmap-panel");
      div.dataset.panel = pn.p;
      div._rlCells = { xs, ys }; // what the click handler maps indices back to
      Charts.heatmap(div, {
        x: xLabels,
        y: yLabels,
        z: pn.z,
        text: pn.text,
        hover: pn.hover,
        empty: pn.empty,
        percent: true,
        zmin: lo,
        zmax: hi,
        title: pF ? `${fieldLabel(pF)}: ${label(pF, pn.p)}` : "",
        xtitle: xF ? fieldLabel(xF) : "",
        ytitle: yF ? fieldLabel(yF) : "",
        colorbar: "mean final test acc. (%)",
        textSize: xs.length > 5 ? 10 : 12,
      });
      if (!div._rlClick) {
        div._rlClick = true;
        div.on("plotly_click", (ev) => {
          const pt = ev.points && ev.points[0];
          if (!pt) return;
          const { xs: cxs, ys: cys } = div._rlCells;
          const xi = Number(pt.x);
          const yi = Number(pt.y);
          if (!(xi >= 0 && xi < cxs.length && yi >= 0 && yi < cys.length)) return;
          const { x: xf, y: yf, panel: pf } = axes;
          const want = {};
          if (pf) want[pf] = div.dataset.panel;
          if (yf) want[yf] = cys[yi];
          if (xf) want[xf] = cxs[xi];
          showOverlay(want);
        });
      }
    });
  }

  // ------------------------------------------------------------------ curves of one cell

  async function showOverlay(want, runIds) {
    const ids =
      runIds ||
      [...runs.values()]
        .filter((r) => Object.entries(want).every(([f, v]) => key((r.config || {})[f]) === v))
        .map((r) => r.id);
    // name the cell in the grid's own factor order
    const ordered = {};
    for (const f of sweep.factors || []) if (f in want) ordered[f] = want[f];
    overlay = { want, runIds: ids, title: cellLabel({ ...ordered, ...want }) || "all runs" };
    const card = document.getElementById("cell-curves-card");
    card.hidden = false;
    document.getElementById("cell-curves-title").textContent = `Runs of ${overlay.title} (${ids.length})`;
    await drawOverlay();
    card.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  async function drawOverlay() {
    if (!overlay) return;
    const div = document.getElementById("cell-curves");
    if (!overlay.runIds.length) {
      Plotly.purge(div);
      div.textContent = "No runs in this cell.";
      return;
    }
    const ids = overlay.runIds.slice(0, 50);
    const data = await api(`/api/metrics?run_ids=${ids.join(",")}`);
    const series = [];
    (data.runs || []).forEach((m, i) => {
      const run = runs.get(m.run_id) || {};
      const seed = run.config ? ` seed ${run.config.seed}` : "";
      const color = Charts.PALETTE[i % Charts.PALETTE.length];
      const x = m.epochs.map((e) => e.epoch);
      series.push({ name: `#${m.run_id}${seed} test`, group: `r${m.run_id}`, x, y: m.epochs.map((e) => e.test_acc), color });
      series.push({ name: `#${m.run_id}${seed} train`, group: `r${m.run_id}`, x, y: m.epochs.map((e) => e.train_acc), color, dash: "dot", width: 1.5 });
    });
    if (!div.data) div.textContent = "";
    await Charts.curves(div, series, { ytitle: "accuracy (%)", percent: true });
  }
  const drawOverlaySoon = RL.debounce(() => drawOverlay().catch(() => {}), 800);

  document.getElementById("cell-curves-close").addEventListener("click", () => {
    overlay = null;
    document.getElementById("cell-curves-card").hidden = true;
  });

  // ------------------------------------------------------------------ cells table (status matrix)

  function chip(id) {
    const run = runs.get(id);
    const status = run ? run.status : "queued";
    const c = (run && run.config) || {};
    let title = `run #${id}${c.seed !== undefined ? ` (seed ${c.seed})` : ""}: ${status}`;
    if (run && run.status === "running") title += `, epoch ${run.epochs_done || 0}/${run.epochs_total || c.epochs || "?"}`;
    if (run && run.final_test_acc !== null && run.final_test_acc !== undefined) title += `, ${pct(run.final_test_acc)}`;
    const a = el("a", { class: `chip st-${status}`, href: `/runs/${id}`, title, "aria-label": title, "data-status": status });
    if (status === "running") {
      const total = (run && (run.epochs_total || c.epochs)) || 1;
      a.append(el("span", { class: "fill", style: { width: `${Math.round((100 * ((run && run.epochs_done) || 0)) / total)}%` } }));
    }
    return a;
  }

  function renderLegend() {
    const box = clear(document.getElementById("status-legend"));
    box.append(el("span", {}, "Each square is one run:"));
    for (const s of RL.STATUSES) box.append(el("span", {}, el("span", { class: `chip st-${s}` }), s === "succeeded" ? "done" : s));
  }

  function renderBaselineSelect() {
    const select = document.getElementById("baseline-select");
    const cells = sweep.cells || [];
    const current = cells.find((c) => c.is_baseline);
    clear(select);
    for (const c of cells) {
      const value = Object.entries(c.key).map(([f, v]) => `${f}:${v}`).join(",");
      select.append(el("option", { value, selected: c === current }, cellLabel(c.key)));
    }
    select.disabled = cells.length < 2;
  }

  function renderCells() {
    const table = clear(document.getElementById("cells-table"));
    const cells = sweep.cells || [];
    const factors = sweep.factors || [];
    // the report's figures go here unless the report-shaped table above shows them already
    const hasPaper =
      document.getElementById("paper-card").hidden &&
      cells.some((c) => c.paper_test_acc !== null && c.paper_test_acc !== undefined);
    const head = [
      ...factors.map((f) => el("th", { scope: "col" }, fieldLabel(f))),
      el("th", { scope: "col" }, "Runs"),
      el("th", { scope: "col", class: "num" }, "n"),
      el("th", { scope: "col", class: "num" }, "Mean ± std (%)"),
      el("th", { scope: "col", class: "num hide-sm" }, "95% CI (%)"),
      el("th", { scope: "col", class: "num" }, "Δ baseline"),
      el("th", { scope: "col", class: "num hide-sm" }, "p (Welch)"),
    ];
    if (hasPaper) {
      head.push(
        el("th", { scope: "col", class: "num" }, "Report (%)"),
        el("th", { scope: "col", class: "num" }, "Ours − report"),
        el("th", { scope: "col", class: "num" }, "Significant?"),
      );
    }
    head.push(el("th", { scope: "col" }, ""));
    table.append(el("thead", {}, el("tr", {}, head)));
    const body = el("tbody");
    for (const c of cells) {
      const ids = c.run_ids || [];
      const list = ids.map((id) => runs.get(id)).filter(Boolean);
      const counts = list.length ? statusCounts(list) : c.statuses || {};
      const pts = (x) => (x === null || x === undefined ? "—" : `${x > 0 ? "+" : x < 0 ? "−" : "±"}${Math.abs(x * 100).toFixed(2)}`);
      const row = [
        ...factors.map((f) => el("td", { class: "nowrap" }, label(f, c.key[f]))),
        el("td", {}, el("div", { class: "chips" }, ids.map(chip))),
        el("td", { class: "num" }, c.n ?? 0),
        el("td", { class: "num" }, fmtMean(c.mean, c.std, c.n)),
        el("td", { class: "num hide-sm" }, c.ci95 ? `${(c.ci95[0] * 100).toFixed(2)} – ${(c.ci95[1] * 100).toFixed(2)}` : "—"),
        el("td", { class: "num" }, c.is_baseline ? "baseline" : pts(c.diff_from_baseline)),
        el("td", { class: "num hide-sm" }, c.p_value === null || c.p_value === undefined ? "—" : c.p_value.toPrecision(2)),
      ];
      if (hasPaper) {
        let sig = "—";
        if (c.paper_p_value !== null && c.paper_p_value !== undefined) {
          sig = `${c.paper_p_value < 0.05 ? "yes" : "no"} (p=${c.paper_p_value.toPrecision(2)})`;
        } else if (c.paper_test_acc !== null && c.paper_test_acc !== undefined && c.n === 1) {
          sig = "n < 2";
        }
        row.push(
          el("td", { class: "num" }, c.paper_test_acc === null || c.paper_test_acc === undefined ? "—" : (c.paper_test_acc * 100).toFixed(2)),
          el("td", { class: "num" }, pts(c.diff_from_paper)),
          el("td", { class: "num" }, sig),
        );
      }
      const acts = [];
      if ((counts.queued || 0) + (counts.running || 0)) {
        acts.push(el("button", { type: "button", class: "btn sm danger", onclick: () => sweepAction("cancel", ids) }, "Cancel"));
      }
      if ((counts.failed || 0) + (counts.cancelled || 0) + (counts.lost || 0)) {
        acts.push(el("button", { type: "button", class: "btn sm", onclick: () => sweepAction("retry", ids) }, "Retry"));
      }
      acts.push(el("button", { type: "button", class: "btn sm", onclick: () => showOverlay(c.key, ids) }, "Curves"));
      row.push(el("td", { class: "actions" }, acts));
      body.append(el("tr", { class: c.is_baseline ? "selected" : "" }, row));
    }
    if (!cells.length) body.append(el("tr", {}, el("td", { colspan: head.length, class: "muted" }, "No cells.")));
    table.append(body);
  }

  // ------------------------------------------------------------------ the report's table

  function renderPaper() {
    const card = document.getElementById("paper-card");
    const cells = sweep.cells || [];
    const need = ["augmentation", "activation", "lr_ratio"];
    const factors = sweep.factors || [];
    const ok =
      cells.some((c) => c.paper_test_acc !== null && c.paper_test_acc !== undefined) &&
      need.every((f) => factors.includes(f)) &&
      factors.length === need.length;
    card.hidden = !ok;
    if (!ok) return;
    const order = pageData.report_grid || {};
    const sortBy = (f) => {
      const vals = factorValues(f);
      const pref = order[f] || [];
      return [...pref.filter((v) => vals.includes(v)), ...vals.filter((v) => !pref.includes(v))];
    };
    const augs = sortBy("augmentation");
    const acts = sortBy("activation");
    const ratios = sortBy("lr_ratio");
    const find = (a, act, r) => cells.find((c) => c.key.augmentation === a && c.key.activation === act && key(c.key.lr_ratio) === r);
    const table = clear(document.getElementById("paper-table"));
    table.append(
      el(
        "thead",
        {},
        el("tr", {}, el("th", { rowspan: 2 }, "Augmentation"), el("th", { rowspan: 2 }, "Activation"), ratios.map((r) => el("th", { colspan: 3, style: { textAlign: "center" } }, `LR ${r}`))),
        el("tr", {}, ratios.map(() => [el("th", { class: "num" }, "ours"), el("th", { class: "num" }, "report"), el("th", { class: "num" }, "diff")])),
      ),
    );
    const body = el("tbody");
    for (const a of augs) {
      for (const act of acts) {
        const tds = [el("td", {}, label("augmentation", a)), el("td", {}, label("activation", act))];
        for (const r of ratios) {
          const c = find(a, act, r);
          if (!c) {
            tds.push(el("td", { class: "num" }, "—"), el("td", { class: "num" }, "—"), el("td", { class: "num" }, "—"));
            continue;
          }
          const ours = c.n ? `${fmtMean(c.mean, c.std, c.n)} (n=${c.n})` : "—";
          const paper = c.paper_test_acc === null || c.paper_test_acc === undefined ? "—" : (c.paper_test_acc * 100).toFixed(2);
          let diff = "—";
          if (c.diff_from_paper !== null && c.diff_from_paper !== undefined) {
            const d = c.diff_from_paper * 100;
            diff = `${d > 0 ? "+" : d < 0 ? "−" : "±"}${Math.abs(d).toFixed(2)}${c.paper_p_value !== null && c.paper_p_value !== undefined && c.paper_p_value < 0.05 ? " *" : ""}`;
          }
          tds.push(el("td", { class: "num" }, ours), el("td", { class: "num" }, paper), el("td", { class: "num" }, diff));
        }
        body.append(el("tr", {}, tds));
      }
    }
    table.append(body);
  }

  // ------------------------------------------------------------------ marginals

  function renderMarginals() {
    const box = document.getElementById("marginals");
    const marginals = sweep.marginals || {};
    const names = Object.keys(marginals).filter((f) => (marginals[f] || []).some((m) => m.n));
    if (!names.length) {
      clear(box).append(el("p", { class: "muted" }, "Marginal means appear as runs succeed."));
      return;
    }
    if (box.querySelector("p")) clear(box);
    for (const child of [...box.children]) if (!names.includes(child.dataset.factor)) child.remove();
    const wraps = names.map((f) => {
      let wrap = box.querySelector(`[data-factor="${CSS.escape(f)}"]`);
      if (!wrap) {
        wrap = el("div", { class: "panel", dataset: { factor: f } }, el("div", { class: "chart short" }));
        box.append(wrap);
      }
      return wrap;
    });
    for (const [i, f] of names.entries()) {
      const wrap = wraps[i];
      const rows = marginals[f].filter((m) => m.n);
      const lows = rows.map((m) => m.mean - (m.std || 0));
      const highs = rows.map((m) => m.mean + (m.std || 0));
      const lo = Math.max(0, Math.min(...lows) - 0.02);
      const hi = Math.min(1.0, Math.max(...highs) + 0.01);
      Charts.bars(wrap.firstChild, {
        x: rows.map((m) => label(f, m.value)),
        y: rows.map((m) => m.mean),
        error: rows.map((m) => m.std || 0),
        text: rows.map((m) => `${(m.mean * 100).toFixed(2)}% (n=${m.n})`),
        percent: true,
        title: `By ${fieldLabel(f)}`,
        xtitle: fieldLabel(f),
        ytitle: "mean final test acc. (%)",
        range: [lo, hi],
        color: Charts.PALETTE[names.indexOf(f) % Charts.PALETTE.length],
      });
    }
  }

  // ------------------------------------------------------------------ refresh and live events

  function renderLive() {
    renderProgress();
    renderHeatmaps();
    renderCells();
  }
  const renderLiveSoon = RL.debounce(renderLive, 250);

  async function refreshSummary() {
    await loadSummary();
    renderHeader();
    renderProgress();
    renderPaper();
    renderCells();
    renderMarginals();
    renderBaselineSelect();
  }
  const refreshSummarySoon = RL.debounce(() => refreshSummary().catch(() => {}), 1200);

  async function refreshAll() {
    await Promise.all([loadSummary(), loadRuns()]);
    renderHeader();
    renderPaper();
    renderLive();
    renderMarginals();
    renderBaselineSelect();
    if (overlay) drawOverlaySoon();
  }

  function openStream() {
    if (stream) return;
    const es = new EventSource(`/api/sweeps/${sweepId}/events`);
    stream = es;
    es.addEventListener("run", (e) => {
      const data = JSON.parse(e.data);
      const old = runs.get(data.id) || {};
      runs.set(data.id, { ...old, ...data });
      renderLiveSoon();
      refreshSummarySoon();
      if (overlay && overlay.runIds.includes(data.id)) drawOverlaySoon();
    });
    es.addEventListener("epoch", (e) => {
      const data = JSON.parse(e.data);
      const run = runs.get(data.run_id);
      if (run) {
        run.epochs_done = Math.max(run.epochs_done || 0, data.epoch);
        renderLiveSoon();
      }
      if (overlay && overlay.runIds.includes(data.run_id)) drawOverlaySoon();
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        stream = null;
        setTimeout(() => {
          refreshAll().catch(() => {});
          openStream();
        }, 5000);
      }
    };
  }

  document.getElementById("baseline-select").addEventListener("change", (e) => {
    baseline = e.target.value;
    refreshSummary().catch((err) => RL.toast(err.message, "error"));
  });

  async function start() {
    try {
      await Promise.all([loadSummary(), loadRuns()]);
    } catch (e) {
      if (e.status === 401) return;
      const box = document.getElementById("sweep-missing");
      box.hidden = false;
      clear(box).append(
        e.status === 404 ? `Grid #${sweepId} does not exist. ` : `Could not load grid #${sweepId}: ${e.message} `,
        el("a", { href: "/sweeps" }, "All grids"),
      );
      document.getElementById("sweep-sub").textContent = "";
      return;
    }
    renderHeader();
    renderControls();
    renderLegend();
    renderPaper();
    renderLive();
    renderMarginals();
    renderBaselineSelect();
    openStream();
    // a safety net if events are missed (e.g. a proxy that buffers them)
    RL.poll(() => refreshAll(), 20000);
  }

  start();
})();
