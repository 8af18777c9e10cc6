/* Grid page heatmap: mean final test accuracy over two chosen factors, one panel per value of
 * a third, the rest pooled; the statistics of each square come from the server. A click on
 * a square opens its runs' curves. */

import * as Charts from "../lib/charts.js";
import { byId, clear, el } from "../lib/dom.js";
import { fieldLabel, label } from "../lib/format.js";
import { factorValues, fmtMean, key, loadCells, state } from "./state.js";

const NONE = "";
const axes = { x: null, y: null, panel: null };
let onCellClick = () => {};
let drawSeq = 0;

export function setCellClick(fn) {
  onCellClick = fn;
}

export function renderControls() {
  const factors = state.sweep.factors || [];
  const pick = (want, taken) => (factors.includes(want) && !taken.includes(want) ? want : factors.find((f) => !taken.includes(f)) || NONE);
  if (axes.x === null) {
    axes.x = pick("lr_ratio", []);
    axes.y = pick("activation", [axes.x]);
    axes.panel = pick("augmentation", [axes.x, axes.y]);
  }
  const box = clear(byId("heatmap-controls"));
  if (!factors.length) {
    box.append(el("p", { class: "muted" }, "This grid varies no factor: every run is the same cell."));
    return;
  }
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
  box.append(select("x", "Columns (x)", false), select("y", "Rows (y)", true), select("panel", "One panel per", true));
}

/** Why a square has no value yet, from its runs' statuses. */
function emptyText(statuses) {
  if (statuses.running) return { text: "running" };
  if (statuses.queued) return { text: "queued" };
  const first = Object.keys(statuses)[0];
  if (!first) return { text: "—" };
  return { text: first, color: statuses.failed || statuses.lost ? "#a11a10" : undefined };
}

export async function renderHeatmaps() {
  const seq = ++drawSeq;
  const factors = state.sweep.factors || [];
  const xF = axes.x || null;
  const yF = axes.y || null;
  const pF = axes.panel || null;
  const by = [pF, yF, xF].filter(Boolean);
  const pooled = factors.filter((f) => !by.includes(f));
  const note = byId("pooled-note");
  note.hidden = !pooled.length;
  note.textContent = pooled.length ? `Pooled over ${pooled.map(fieldLabel).join(", ")} (and seeds).` : "";
  const cells = await loadCells(by);
  if (seq !== drawSeq) return; // a newer choice of axes is on its way
  const find = (p, y, x) =>
    cells.find((c) => (!pF || key(c.key[pF]) === p) && (!yF || key(c.key[yF]) === y) && (!xF || key(c.key[xF]) === x));

  const xs = xF ? factorValues(xF) : [NONE];
  const ys = yF ? factorValues(yF) : [NONE];
  const ps = pF ? factorValues(pF) : [NONE];
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
        const c = find(p, y, x) || { n: 0, mean: null, std: null, statuses: {} };
        const statusText = Object.entries(c.statuses || {}).map(([st, n]) => `${n} ${st}`).join(", ") || "no runs";
        z[yi].push(c.n ? c.mean : null);
        text[yi].push(c.n ? `${fmtMean(c.mean, c.std, c.n)}<br>n=${c.n}` : "");
        hover[yi].push(`${yLabels[yi]} · ${xLabels[xi]}<br>${c.n ? `mean ${fmtMean(c.mean, c.std, c.n)}%, n=${c.n}<br>` : ""}${statusText}`);
        if (!c.n) empty.push({ x: xi, y: yi, ...emptyText(c.statuses || {}) });
        else {
          lo = Math.min(lo, c.mean);
          hi = Math.max(hi, c.mean);
        }
      });
    });
    return { p, z, text, hover, empty };
  });
  // One value so far (one finished square, or all alike): ten points around it, not a
  // colour bar from 40.15 to 40.3 %; two close values keep their own narrow range.
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  else if (hi === lo) [lo, hi] = Charts.around(lo, 0.1, 0, 1);
  else if (hi - lo < 0.002) [lo, hi] = [lo - 0.001, hi + 0.001];

  // one div per panel; reuse them so Plotly.react updates in place
  const box = byId("heatmaps");
  const axesKey = `${xF}|${yF}|${pF}`;
  for (const child of [...box.children]) if (child.dataset.axes !== axesKey || Number(child.dataset.index) >= panels.length) child.remove();
  panels.forEach((pn, i) => {
    let wrap = box.querySelector(`[data-index="${i}"]`);
    if (!wrap) {
      const div = el("div", { class: "chart heatmap-panel", id: `heatmap-${i}` });
      div.style.height = `${Math.min(640, Math.max(240, 120 + 52 * ys.length))}px`;
      wrap = el("div", { class: "panel", dataset: { index: i, axes: axesKey } }, div);
      box.append(wrap);
    }
  });
  // resolves once every panel is drawn
  const drawn = panels.map((pn, i) => {
    const div = box.querySelector(`[data-index="${i}"] .heatmap-panel`);
    div._rlCells = { xs, ys, p: pn.p, axes: { ...axes } }; // what a click maps back to
    return Charts.heatmap(div, {
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
    }).then(() => {
      if (div._rlClick) return;
      div._rlClick = true;
      div.on("plotly_click", (ev) => {
        const pt = ev.points && ev.points[0];
        if (!pt) return;
        const { xs: cxs, ys: cys, p, axes: a } = div._rlCells;
        const xi = Number(pt.x);
        const yi = Number(pt.y);
        if (!(xi >= 0 && xi < cxs.length && yi >= 0 && yi < cys.length)) return;
        const want = {};
        if (a.panel) want[a.panel] = p;
        if (a.y) want[a.y] = cys[yi];
        if (a.x) want[a.x] = cxs[xi];
        onCellClick(want);
      });
    });
  });
  await Promise.all(drawn);
}
