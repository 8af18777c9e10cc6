/* The dashboard's figures: one function per kind, shared by every page that shows it.
 *
 *   curves(div, series, opts)      lines over epochs (accuracy, loss, lr), with optional
 *                                  step shape, dashed planned parts and ± std bands
 *   extend(div, points)            add points to curves without redrawing
 *   heatmap(div, spec)             a matrix of values with text in every cell
 *   confusion(div, classes, m)     a confusion matrix (counts, row-normalised colour)
 *   bars(div, spec)                bars from 0 with error bars and labels clear of them
 *   parcoords(div, spec)           parallel coordinates of factors vs accuracy (SVG lines;
 *                                  drawn once scrolled into view, after the first chart)
 *   interaction(div, spec)         an interaction plot: one line per level of a factor
 *                                  across the levels of another, with interval bars
 *   scatter(div, spec)             one point per run: a field's value against a metric
 *
 * Plotly.js is a classic script served by the app (app/static/plotly/, the partial bundle
 * with the cartesian trace types: scatter, bar, heatmap); it is never fetched from a CDN.
 * A page with charts names it in <link rel="preload" as="script" data-plotly>, so that it
 * downloads with the page; this module runs it only once the page's modules have run, so
 * their requests are under way while Plotly starts up (a few hundred ms of the main thread).
 * A page that loaded Plotly itself (window.Plotly) keeps its own.
 */

import { parcoordsLayout } from "./parcoords_layout.js";

let plotlyReady = null;

/** window.Plotly, once loaded. */
function plotly() {
  if (!plotlyReady) {
    plotlyReady = window.Plotly
      ? Promise.resolve(window.Plotly)
      : new Promise((resolve, reject) => {
          const link = document.querySelector("link[data-plotly]");
          if (!link) throw new Error("this page names no Plotly to load");
          const script = document.createElement("script");
          script.src = link.href;
          script.onload = () => resolve(window.Plotly);
          script.onerror = () => reject(new Error("could not load Plotly"));
          document.head.append(script);
        });
  }
  return plotlyReady;
}
// Inserted now, it runs after this task: after every module of the page has run.
if (document.querySelector("link[data-plotly]")) plotly();

export const PALETTE = [
  "#1f5fbf", "#d1431f", "#1a8a4a", "#8a3fc2", "#c27c0e",
  "#0f8c96", "#c2306f", "#5a6476", "#7d9a12", "#3b3bb5",
];

const CONFIG = {
  responsive: true,
  displaylogo: false,
  showSendToCloud: false,
  showLink: false,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
};

/** "#1f5fbf" -> "rgba(31,95,191,a)" (band fills). */
export function rgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

function baseLayout(opts = {}) {
  const narrow = window.innerWidth < 700;
  return {
    title: opts.title ? { text: opts.title, font: { size: 14 }, x: 0, xanchor: "left", xref: "paper" } : undefined,
    font: {
      family: 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif',
      size: 12,
      color: "#1c2230",
    },
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
    margin: { l: narrow ? 52 : 64, r: 16, t: opts.title ? 40 : 24, b: narrow ? 84 : 56 },
    hovermode: opts.hovermode || "closest",
    showlegend: opts.showlegend !== false,
    // valign top: the symbol beside the first line of an entry of several (legendName)
    legend: { orientation: "h", x: 0, y: -0.22, yanchor: "top", valign: "top", font: { size: 11 } },
  };
}

function axis(title, extra = {}) {
  return {
    title: { text: title, standoff: 8 },
    gridcolor: "#e5e8ee",
    zerolinecolor: "#c9ced8",
    linecolor: "#9aa3b2",
    ticks: "outside",
    automargin: true,
    ...extra,
  };
}

// The page's first chart on screen: marked "first-chart" in the Performance API (what
// bench/pages.py reports), and what costly charts below it wait for (later()).
let firstDrawn;
const firstChart = new Promise((resolve) => {
  firstDrawn = resolve;
});

function plot(div, data, layout, config = CONFIG) {
  // Plotly's "responsive" follows the window only; a panel that narrows because another was
  // added beside it (grid panels appear as runs finish) must redraw at its new width.
  if (!div._rlObserved) {
    div._rlObserved = true;
    new ResizeObserver(() => {
      if (div.data && div.offsetWidth) window.Plotly.Plots.resize(div);
    }).observe(div);
  }
  return plotly()
    .then((Plotly) => Plotly.react(div, data, layout, config))
    .then((gd) => {
      if (firstDrawn) {
        performance.mark("first-chart");
        firstDrawn();
        firstDrawn = null;
      }
      return gd;
    });
}

const idle = () => new Promise((resolve) => (window.requestIdleCallback || setTimeout)(resolve, { timeout: 2000 }));

/**
 * Draws a costly chart (a WebGL context and its readPixels) only once its div comes near
 * the viewport, and never before the page's first other chart is drawn or the page is idle:
 * it must not hold up what is above it. Until then the latest draw asked for replaces the
 * one pending; once drawn, redraws go straight through. purge() drops a pending draw.
 */
function later(div, draw) {
  if (div._rlDrawn) return draw();
  div._rlPending = draw;
  if (!div._rlWaiting) {
    div._rlWaiting = new Promise((resolve) => {
      const seen = new IntersectionObserver(
        (entries) => {
          if (!entries.some((e) => e.isIntersecting)) return;
          seen.disconnect();
          Promise.race([firstChart, idle()]).then(() => {
            const pending = div._rlPending;
            div._rlPending = null;
            div._rlWaiting = null;
            if (!pending) return resolve(div);
            div._rlDrawn = true;
            resolve(pending());
          });
        },
        { rootMargin: "200px" },
      );
      seen.observe(div);
    });
  }
  return div._rlWaiting;
}

const plain = (text) => String(text).replace(/[<>&]/g, "");

/** A legend entry on a phone: a long name broken after its commas and colons, since Plotly
 * cuts an entry wider than the chart off at the screen's edge. */
function legendName(name) {
  const most = 40;
  if (window.innerWidth >= 700 || String(name).length <= most) return name;
  const lines = [""];
  for (const part of plain(name).split(/(?<=[,:] )/)) {
    if (lines[lines.length - 1] && (lines[lines.length - 1] + part).length > most) lines.push("");
    lines[lines.length - 1] += part;
  }
  return lines.join("<br>");
}

/**
 * Lines over epochs.
 * series: [{name, x, y, color, dash, group, width, mode, shape ("hv" = steps), opacity,
 *           showlegend, lo, hi (a band: drawn as a filled area between lo and hi)}]
 * opts: {title, xtitle, ytitle, percent (y are fractions, shown as %), logY, xmax,
 *        showlegend, hovermode}
 */
export function curves(div, series, opts = {}) {
  const scale = opts.percent ? 100 : 1;
  const scaled = (ys) => ys.map((v) => (v === null || v === undefined ? null : v * scale));
  const fmt = opts.percent ? "%{y:.2f}%" : "%{y:.4g}";
  const data = [];
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    if (s.lo && s.hi) {
      // A band is two traces: its lower edge (no line), then its upper edge filled down to it.
      const edge = { type: "scatter", mode: "lines", x: s.x.slice(), legendgroup: s.group, hoverinfo: "skip", line: { width: 0, color } };
      data.push({ ...edge, name: `${s.name} lower`, y: scaled(s.lo), showlegend: false });
      data.push({ ...edge, name: s.name, y: scaled(s.hi), fill: "tonexty", fillcolor: rgba(color, 0.18), showlegend: false });
      return;
    }
    data.push({
      type: "scatter",
      mode: s.mode || (s.x.length > 60 ? "lines" : "lines+markers"),
      name: legendName(s.name),
      legendgroup: s.group,
      showlegend: s.showlegend,
      x: s.x.slice(),
      y: scaled(s.y),
      opacity: s.opacity,
      line: { color, width: s.width || 2, dash: s.dash || "solid", shape: s.shape || "linear" },
      marker: { size: 5 },
      customdata: s.customdata,
      hovertemplate: `${plain(s.name)}<br>epoch %{x}<br>${fmt}<extra></extra>`,
    });
  });
  const layout = baseLayout(opts);
  // entries broken into lines (phones): the legend sits on the figure's bottom edge, where
  // its height cannot push it up into the x axis' title as a paper-relative place does
  if (data.some((t) => String(t.name).includes("<br>"))) Object.assign(layout.legend, { yref: "container", y: 0, yanchor: "bottom" });
  const lines = data.filter((t) => !t.fill && t.hoverinfo !== "skip");
  const empty = !lines.some((t) => t.x.length);
  const lastX = Math.max(opts.xmax || 0, ...data.map((t) => (t.x.length ? t.x[t.x.length - 1] : 0)));
  layout.xaxis = axis(opts.xtitle || "epoch", {
    tickformat: "d",
    // few epochs: one tick each (no "2, 2, 3, 3" from rounded half-epochs)
    dtick: lastX <= 12 ? 1 : undefined,
    // the whole training horizon from the first epoch on, so curves grow into it
    range: opts.xmax ? [0.5, opts.xmax + 0.5] : empty ? [0.5, 10.5] : undefined,
    autorange: opts.xmax || empty ? false : true,
  });
  const thin = empty ? null : thinRange(data, opts);
  layout.yaxis = axis(opts.ytitle || "", {
    type: opts.logY ? "log" : "linear",
    ticksuffix: opts.percent ? "%" : "",
    exponentformat: "power",
    // no data yet: a sensible empty frame instead of Plotly's -1..4; one point or value so
    // far: a frame around it (thinRange)
    range: empty ? (opts.logY ? [-4, 0] : opts.percent ? [0, 100] : [0, 3]) : thin || undefined,
    autorange: !empty && !thin,
  });
  div._rlScale = scale;
  div._rlEmpty = empty || Boolean(thin); // extend() lets the axis fit once more points come
  return plot(div, data, layout);
}

/** A range `span` wide centred on v, moved to stay within [min, max] where it can. */
export function around(v, span, min = -Infinity, max = Infinity) {
  let lo = v - span / 2;
  let hi = v + span / 2;
  if (lo < min) [lo, hi] = [min, min + span];
  if (hi > max) [lo, hi] = [max - span, max];
  return [Math.max(lo, min), Math.min(hi, max)];
}

/**
 * The y range for curves that are one point so far (a single epoch) or one value: Plotly
 * would stretch a sliver around it over the whole height (112 to 113.5 for one epoch's
 * speed). A decade either side on a log axis, at least 20 points on a percent one, else at
 * least 0 to 2v; null once there are several values over several epochs, which Plotly fits.
 * (traces: as drawn, already scaled.)
 */
function thinRange(traces, opts) {
  const ys = [];
  const xs = new Set();
  for (const t of traces) {
    t.y.forEach((v, i) => {
      if (!Number.isFinite(v) || (opts.logY && v <= 0)) return;
      ys.push(v);
      xs.add(t.x[i]);
    });
  }
  if (!ys.length) return null;
  const lo = Math.min(...ys);
  const hi = Math.max(...ys);
  if (lo !== hi && xs.size > 1) return null;
  if (opts.logY) return [Math.log10(lo) - 1, Math.log10(hi) + 1];
  const mid = (lo + hi) / 2;
  const spread = (hi - lo) * 1.5;
  if (opts.percent) return around(mid, Math.max(20, spread), 0, 100);
  return around(mid, Math.max(2 * Math.abs(mid) || 2, spread));
}

/**
 * Append points to existing curves without redrawing them.
 * points: [{trace: index, x: epoch, y: value}] (values as in curves(); scaled the same).
 */
export function extend(div, points) {
  if (!points.length || !div.data) return Promise.resolve();
  const scale = div._rlScale || 1;
  const byTrace = new Map();
  for (const p of points) {
    if (!byTrace.has(p.trace)) byTrace.set(p.trace, { x: [], y: [] });
    byTrace.get(p.trace).x.push(p.x);
    byTrace.get(p.trace).y.push(p.y === null || p.y === undefined ? null : p.y * scale);
  }
  const indices = [...byTrace.keys()];
  if (div._rlEmpty) {
    // the first points (or the first beside a single one): let the y axis fit them from now on
    div._rlEmpty = false;
    window.Plotly.relayout(div, { "yaxis.autorange": true });
  }
  return window.Plotly.extendTraces(
    div,
    { x: indices.map((i) => byTrace.get(i).x), y: indices.map((i) => byTrace.get(i).y) },
    indices,
  );
}

/**
 * A heatmap with text in every cell.
 * spec: {x: [labels], y: [labels], z: [[value|null]], text: [[string]], title, xtitle, ytitle,
 *        zmin, zmax, colorbar (title), percent (z are fractions), hover: [[string]],
 *        empty: [{x, y, text, color}] (cells without a value say why), textSize}
 */
export function heatmap(div, spec) {
  const scale = spec.percent ? 100 : 1;
  const z = spec.z.map((row) => row.map((v) => (v === null || v === undefined ? null : v * scale)));
  // numeric axes with the labels as tick text: cells keep their place even when no cell
  // has a value yet, and a click gives the indices back
  const xi = spec.x.map((_, i) => i);
  const yi = spec.y.map((_, i) => i);
  const data = [
    {
      type: "heatmap",
      x: xi,
      y: yi,
      z,
      text: spec.text,
      texttemplate: "%{text}",
      textfont: { size: spec.textSize || 12 },
      customdata: spec.hover,
      hovertemplate: spec.hover ? "%{customdata}<extra></extra>" : "%{z:.2f}<extra></extra>",
      colorscale: "Viridis",
      zmin: spec.zmin === undefined ? undefined : spec.zmin * scale,
      zmax: spec.zmax === undefined ? undefined : spec.zmax * scale,
      xgap: 2,
      ygap: 2,
      hoverongaps: false,
      colorbar: {
        title: { text: spec.colorbar || "", side: "right" },
        ticksuffix: spec.percent ? "%" : "",
        thickness: 12,
        // below the toolbar, which Plotly draws over the top right corner
        len: 0.8,
        y: 0,
        yanchor: "bottom",
      },
    },
  ];
  const layout = baseLayout({ title: spec.title, showlegend: false });
  const cat = (title, labels, idx, extra) =>
    axis(title, { tickvals: idx, ticktext: labels, ticks: "", showgrid: false, zeroline: false, ...extra });
  layout.xaxis = cat(spec.xtitle || "", spec.x, xi, { range: [-0.5, spec.x.length - 0.5] });
  layout.yaxis = cat(spec.ytitle || "", spec.y, yi, { range: [spec.y.length - 0.5, -0.5] });
  layout.margin.b = 56;
  layout.margin.t = 44; // room for the toolbar above the cells
  layout.plot_bgcolor = "#eef0f4";
  layout.annotations = (spec.empty || []).map((e) => ({
    x: e.x,
    y: e.y,
    text: e.text,
    showarrow: false,
    font: { color: e.color || "#3a4457", size: 11 },
  }));
  return plot(div, data, layout);
}

/** Confusion matrix: rows = true class, columns = predicted; colour = row share. */
export function confusion(div, classes, matrix) {
  const text = matrix.map((row) => row.map((v) => String(v)));
  const z = matrix.map((row) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return row.map((v) => (100 * v) / total);
  });
  const hover = matrix.map((row, i) =>
    row.map((v, j) => `true ${classes[i]}, predicted ${classes[j]}: ${v} (${z[i][j].toFixed(1)}% of row)`),
  );
  const data = [
    {
      type: "heatmap",
      x: classes,
      y: classes,
      z,
      text,
      texttemplate: classes.length <= 12 ? "%{text}" : "",
      customdata: hover,
      hovertemplate: "%{customdata}<extra></extra>",
      // light (few) to dark (many); Plotly's own "Blues" runs the other way
      colorscale: [
        [0, "#f4f8fd"],
        [0.25, "#c6dbef"],
        [0.5, "#6baed6"],
        [0.75, "#2171b5"],
        [1, "#08306b"],
      ],
      zmin: 0,
      zmax: 100,
      xgap: 1,
      ygap: 1,
      colorbar: { title: { text: "% of true class", side: "right" }, ticksuffix: "%", thickness: 12, len: 0.8, y: 0, yanchor: "bottom" },
    },
  ];
  const layout = baseLayout({ showlegend: false });
  const long = Math.max(...classes.map((c) => String(c).length)) > 3;
  layout.xaxis = axis("predicted class", { type: "category", ticks: "", showgrid: false, tickangle: long ? -40 : 0 });
  layout.yaxis = axis("true class", { type: "category", ticks: "", showgrid: false, autorange: "reversed" });
  layout.margin.b = 70;
  layout.margin.t = 40;
  return plot(div, data, layout);
}

/**
 * Bars from 0, optionally with error bars; each label sits above its error bar, never on it.
 * spec: {x: [labels], y: [values], error: [values]|null, percent, ytitle, xtitle, title,
 *        text: [strings], color, max (top of the axis, as a fraction if percent)}
 */
export function bars(div, spec) {
  const scale = spec.percent ? 100 : 1;
  const y = spec.y.map((v) => (v === null || v === undefined ? null : v * scale));
  const err = (spec.error || spec.y.map(() => 0)).map((v) => (v || 0) * scale);
  const text = spec.text || y.map((v) => (v === null ? "" : spec.percent ? `${v.toFixed(1)}%` : String(v)));
  const data = [
    {
      type: "bar",
      x: spec.x,
      y,
      marker: { color: spec.color || PALETTE[0] },
      error_y: spec.error ? { type: "data", array: err, visible: true, color: "#1c2230", thickness: 1.5, width: 6 } : undefined,
      hovertemplate: spec.percent ? "%{x}: %{y:.2f}%<extra></extra>" : "%{x}: %{y}<extra></extra>",
    },
  ];
  const layout = baseLayout({ title: spec.title, showlegend: false });
  const long = spec.x.length > 6 && Math.max(...spec.x.map((c) => String(c).length)) > 3;
  // the categories' own order and range, set: a redraw with more categories (live updates)
  // must not keep the range of the last one
  layout.xaxis = axis(spec.xtitle || "", {
    type: "category",
    tickangle: long ? -40 : 0,
    categoryorder: "array",
    categoryarray: spec.x,
    range: [-0.5, spec.x.length - 0.5],
    autorange: false,
  });
  const tops = y.map((v, i) => (v === null ? 0 : v + err[i]));
  const top = spec.max !== undefined ? spec.max * scale : Math.max(...tops, 0) * 1.15 || 1;
  layout.yaxis = axis(spec.ytitle || "", {
    ticksuffix: spec.percent ? "%" : "",
    // bars start at 0 so their lengths compare; headroom for the labels
    range: [0, Math.max(top, Math.max(...tops) * 1.15)],
  });
  layout.annotations = spec.x.map((_, i) => ({
    x: i, // a category's index: annotations place by position on a category axis
    y: tops[i],
    text: plain(text[i] || ""),
    showarrow: false,
    yanchor: "bottom",
    yshift: 3,
    font: { size: 11 },
  }));
  layout.margin.b = 56;
  layout.margin.t = spec.title ? 44 : 24;
  return plot(div, data, layout);
}

/**
 * An interaction plot: one line per level of one factor across the (category) levels of
 * another, each point with its interval as asymmetric error bars (intervals are clipped).
 * Lines that run parallel mean no interaction. SVG traces only: a grid page holds several.
 * spec: {x: [labels], series: [{name, y: [], lo: [], hi: []}], percent, title, xtitle, ytitle}
 */
export function interaction(div, spec) {
  const scale = spec.percent ? 100 : 1;
  const sc = (v) => (v === null || v === undefined ? null : v * scale);
  const fmt = spec.percent ? "%{y:.2f}%" : "%{y:.4g}";
  const data = spec.series.map((s, i) => {
    const y = s.y.map(sc);
    const up = s.hi.map((h, j) => (h === null || y[j] === null ? 0 : sc(h) - y[j]));
    const down = s.lo.map((l, j) => (l === null || y[j] === null ? 0 : y[j] - sc(l)));
    const color = PALETTE[i % PALETTE.length];
    return {
      type: "scatter",
      mode: "lines+markers",
      name: plain(s.name),
      x: spec.x.map(plain),
      y,
      line: { color, width: 2 },
      marker: { size: 7, color },
      error_y: { type: "data", symmetric: false, array: up, arrayminus: down, visible: true, thickness: 1.2, width: 5, color },
      hovertemplate: `${plain(s.name)}<br>%{x}: ${fmt}<extra></extra>`,
    };
  });
  const layout = baseLayout({ title: spec.title });
  layout.xaxis = axis(spec.xtitle || "", { type: "category", categoryorder: "array", categoryarray: spec.x.map(plain) });
  layout.yaxis = axis(spec.ytitle || "", { ticksuffix: spec.percent ? "%" : "" });
  return plot(div, data, layout);
}

/**
 * One point per run: a field's value (x) against a metric (y). Text values sit on a category
 * axis (in natural order) with a small fixed spread, so runs of one value do not hide each
 * other; a click on a point calls spec.onClick with its id. SVG: a page may hold several.
 * spec: {x: [numbers or labels], y: [], ids: [], percent, title, xtitle, ytitle, onClick}
 */
export function scatter(div, spec) {
  const scale = spec.percent ? 100 : 1;
  const numeric = spec.x.every((v) => typeof v === "number");
  const cats = numeric ? [] : [...new Set(spec.x.map(String))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const spread = (i) => ((((i * 0.6180339887) % 1) + 1) % 1 - 0.5) * 0.35;
  const fmt = spec.percent ? "%{y:.2f}%" : "%{y:.4g}";
  const data = [
    {
      type: "scatter",
      mode: "markers",
      x: numeric ? spec.x.slice() : spec.x.map((v, i) => cats.indexOf(String(v)) + spread(i)),
      y: spec.y.map((v) => (v === null || v === undefined ? null : v * scale)),
      customdata: spec.ids,
      text: spec.x.map((v) => plain(v)),
      marker: { size: 7, color: PALETTE[0], opacity: 0.75, line: { width: 0.5, color: "#ffffff" } },
      hovertemplate: `run #%{customdata}<br>%{text}: ${fmt}<extra></extra>`,
    },
  ];
  const layout = baseLayout({ title: spec.title, showlegend: false });
  layout.xaxis = axis(
    spec.xtitle || "",
    numeric ? {} : { tickvals: cats.map((_, i) => i), ticktext: cats.map(plain), range: [-0.5, cats.length - 0.5], zeroline: false },
  );
  layout.yaxis = axis(spec.ytitle || "", { ticksuffix: spec.percent ? "%" : "" });
  div._rlOnClick = spec.onClick;
  return plot(div, data, layout).then((gd) => {
    if (!div._rlClicks) {
      div._rlClicks = true;
      div.on("plotly_click", (event) => {
        const point = event.points && event.points[0];
        if (point && point.customdata != null && div._rlOnClick) div._rlOnClick(point.customdata);
      });
    }
    return gd;
  });
}

// Plotly's Viridis, for the lines of parallel coordinates (one colour per line).
const VIRIDIS = ["#440154", "#48186a", "#472d7b", "#424086", "#3b528b", "#33638d", "#2c728e", "#26828e", "#21918c",
  "#1fa088", "#28ae80", "#3fbc73", "#5ec962", "#84d44b", "#addc30", "#d8e219", "#fde725"];

function viridis(t) {
  const at = Math.min(Math.max(Number.isFinite(t) ? t : 1, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(at), VIRIDIS.length - 2);
  const [a, b] = [VIRIDIS[i], VIRIDIS[i + 1]].map((hex) => parseInt(hex.slice(1), 16));
  const mix = (shift) => Math.round(((a >> shift) & 255) * (i + 1 - at) + ((b >> shift) & 255) * (at - i));
  return `rgb(${mix(16)},${mix(8)},${mix(0)})`;
}

function extent(values) {
  const finite = values.filter((v) => Number.isFinite(v));
  return finite.length ? [Math.min(...finite), Math.max(...finite)] : [0, 1];
}

/** About five round numbers from lo to hi (steps of 1, 2 or 5 times a power of ten). */
function niceTicks(lo, hi) {
  const raw = (hi - lo) / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * Parallel coordinates, in SVG: one line per item across one vertical axis per dimension,
 * coloured by `color` (Viridis, with a colour bar); hovering a line names all its values.
 * (Plotly's own parcoords trace needs WebGL and the full plotly.js bundle.)
 * spec: {dimensions: [{label, values, ticktext?, tickvals?, range?, tickformat?}],
 *        color: [values] (the last dimension is usually final accuracy), colorTitle, title}
 */
export function parcoords(div, spec) {
  const narrow = div.clientWidth < 600;
  const dims = spec.dimensions;
  const count = dims.length ? dims[0].values.length : 0;
  const scales = dims.map((d) => {
    let [lo, hi] = d.range || extent(d.values);
    if (hi === lo) [lo, hi] = [lo - 0.5, hi + 0.5];
    return { lo, hi };
  });
  const pos = (j, v) => (v - scales[j].lo) / (scales[j].hi - scales[j].lo);
  const digits = (d) => /^\.(\d)f$/.exec(d.tickformat || "");
  const shown = (d, v) => {
    if (d.ticktext) return d.ticktext[d.tickvals.indexOf(v)];
    const fixed = digits(d);
    return fixed ? v.toFixed(Number(fixed[1])) : String(Number(v.toPrecision(4)));
  };
  const [cmin, cmax] = extent(spec.color);
  const xs = dims.map((_, j) => j);
  // the best lines last, so that they are drawn on top
  const order = [...Array(count).keys()].sort((a, b) => spec.color[a] - spec.color[b]);
  const data = order.map((i) => {
    const text = dims.map((d) => `${plain(d.label)}: ${plain(shown(d, d.values[i]))}`).join("<br>");
    return {
      type: "scatter",
      mode: "lines",
      x: xs,
      y: dims.map((d, j) => pos(j, d.values[i])),
      line: { color: viridis(cmax > cmin ? (spec.color[i] - cmin) / (cmax - cmin) : 1), width: 1.6 },
      opacity: 0.8,
      showlegend: false,
      text: xs.map(() => text),
      hovertemplate: "%{text}<extra></extra>",
    };
  });
  // the colour bar: a marker trace outside the axes' range
  data.push({
    type: "scatter",
    mode: "markers",
    x: [0, 0],
    y: [-10, -10],
    hoverinfo: "skip",
    showlegend: false,
    marker: {
      color: [cmin, cmax],
      cmin,
      cmax,
      colorscale: "Viridis",
      showscale: !narrow, // the last axis is the same accuracy; phones need the room
      colorbar: { title: { text: spec.colorTitle || "", side: "right" }, thickness: 12, len: 0.8, y: 0, yanchor: "bottom" },
    },
  });
  const layout = baseLayout({ title: spec.title, showlegend: false });
  const ticks = dims.map((d, j) => (d.tickvals || niceTicks(scales[j].lo, scales[j].hi)).map((v) => ({ y: pos(j, v), text: plain(shown(d, v)) })));
  layout.hovermode = "closest";
  layout.yaxis = { range: [-0.04, 1.04], visible: false, fixedrange: true };
  layout.shapes = xs.map((j) => ({ type: "line", x0: j, x1: j, y0: 0, y1: 1, layer: "below", line: { color: "#9aa3b2", width: 1 } }));
  // below the page's first chart: drawn when scrolled into view, its words placed for the
  // width it has then
  return later(div, () => {
    const fit = parcoordsLayout(div.clientWidth, dims.map((d) => plain(d.label)), ticks, narrow);
    layout.margin = { ...fit.margin, t: fit.margin.t + (spec.title ? 30 : 0) };
    layout.xaxis = { range: fit.range, visible: false, fixedrange: true };
    layout.annotations = fit.annotations;
    return plot(div, data, layout);
  });
}

/**
 * The dimensions of a parallel-coordinates plot for config fields of runs: numbers stay
 * numbers, except fields with few distinct values (seeds, widths), which become discrete
 * ticks like text fields do, so "seed 0, 1, 2" never reads "0.5".
 */
export function factorDimensions(fields, configs, labelOf, valueLabel) {
  return fields.map((f) => {
    const vals = configs.map((c) => c[f]);
    const distinct = [...new Set(vals.map((v) => JSON.stringify(v)))];
    if (vals.every((v) => typeof v === "number") && distinct.length > 6) return { label: labelOf(f), values: vals };
    const cats = distinct
      .map((c) => JSON.parse(c))
      .sort((a, b) => (typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b))))
      .map((v) => JSON.stringify(v));
    return {
      label: labelOf(f),
      values: vals.map((v) => cats.indexOf(JSON.stringify(v))),
      tickvals: cats.map((_, i) => i),
      ticktext: cats.map((c) => valueLabel(f, JSON.parse(c))),
      range: [-0.25, cats.length - 0.75],
    };
  });
}

export function purge(div) {
  div._rlPending = null;
  div._rlDrawn = false;
  if (window.Plotly) window.Plotly.purge(div);
}

/** Count the points of every trace of a graph div (used by the browser test too). */
export function pointCount(div) {
  return (div.data || []).reduce((n, t) => n + ((t.x && t.x.length) || 0), 0);
}
