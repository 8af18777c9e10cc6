/* Turning runs' epoch rows into the compare chart's series: one metric, optional smoothing,
 * one line per run (identical ones told apart) or one mean line with a ± std band per group. */

import { PALETTE } from "../lib/charts.js";

export const METRICS = {
  test_acc: { title: "test accuracy (%)", percent: true },
  train_acc: { title: "training accuracy (%)", percent: true },
  test_loss: { title: "test loss" },
  train_loss: { title: "training loss" },
  // as on the run page: constant within an epoch (steps), phases a decade apart (log axis)
  lr: { title: "learning rate", logY: true, shape: "hv" },
  images_per_second: { title: "training images / s" },
  seconds: { title: "seconds per epoch" },
};

/** Exponential moving average with weight `alpha` on the past (0 = raw); nulls pass through
 * and do not reset the average (a diverged epoch stays a gap). */
export function smooth(ys, alpha) {
  if (!alpha) return ys.slice();
  let avg = null;
  return ys.map((y) => {
    if (y === null || y === undefined) return null;
    avg = avg === null ? y : alpha * avg + (1 - alpha) * y;
    return avg;
  });
}

const DASHES = ["solid", "dash", "dot", "dashdot", "longdash"];

/**
 * One line per run. Runs whose curves are identical would hide each other: later ones are
 * drawn dashed, slightly thinner, and named "= #first" in the legend.
 */
export function runSeries(runs, rows, metric, alpha, nameOf) {
  const seen = new Map(); // curve fingerprint -> [run ids]
  return runs.map((run, i) => {
    const epochs = rows.get(run.id) || [];
    const x = epochs.map((e) => e.epoch);
    const y = smooth(epochs.map((e) => e[metric]), alpha);
    const print = JSON.stringify([x, y]);
    const twins = seen.get(print) || [];
    seen.set(print, [...twins, run.id]);
    const same = twins.length && x.length ? ` (= #${twins[0]})` : "";
    return {
      name: `${nameOf(run)}${same}`,
      group: `r${run.id}`,
      x,
      y,
      color: PALETTE[i % PALETTE.length],
      dash: DASHES[twins.length % DASHES.length],
      width: twins.length ? 2.5 : 2,
      opacity: 0.9,
    };
  });
}

/** Runs grouped by the value of `field` in their config, in first-seen order. */
export function groupBy(runs, field) {
  const groups = new Map();
  for (const run of runs) {
    const key = JSON.stringify((run.config || {})[field]);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(run);
  }
  return [...groups.entries()].map(([key, members]) => ({ value: JSON.parse(key), runs: members }));
}

/**
 * Per group: a band (mean ± std over its runs, at every epoch two or more runs reached) and
 * the mean line, in one colour; with `showRuns`, each run thin and faint behind them.
 */
export function groupSeries(groups, rows, metric, alpha, nameOfGroup, showRuns) {
  const series = [];
  groups.forEach((g, gi) => {
    const color = PALETTE[gi % PALETTE.length];
    const name = nameOfGroup(g.value);
    const byEpoch = new Map();
    for (const run of g.runs) {
      const epochs = rows.get(run.id) || [];
      const ys = smooth(epochs.map((e) => e[metric]), alpha);
      epochs.forEach((e, i) => {
        if (ys[i] === null || ys[i] === undefined) return;
        if (!byEpoch.has(e.epoch)) byEpoch.set(e.epoch, []);
        byEpoch.get(e.epoch).push(ys[i]);
      });
      if (showRuns) {
        series.push({ name: `#${run.id}`, group: `g${gi}`, x: epochs.map((e) => e.epoch), y: ys, color, width: 1, opacity: 0.35, mode: "lines", showlegend: false });
      }
    }
    const x = [...byEpoch.keys()].sort((a, b) => a - b);
    const stats = x.map((ep) => {
      const v = byEpoch.get(ep);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : null;
      return { mean, std };
    });
    const banded = x.map((_, i) => stats[i].std !== null);
    if (banded.some(Boolean)) {
      const bx = x.filter((_, i) => banded[i]);
      const bs = stats.filter((_, i) => banded[i]);
      series.push({ name: `${name} ± std`, group: `g${gi}`, x: bx, lo: bs.map((s) => s.mean - s.std), hi: bs.map((s) => s.mean + s.std), color });
    }
    series.push({ name: `${name} (n=${g.runs.length})`, group: `g${gi}`, x, y: stats.map((s) => s.mean), color, width: 2.5, mode: "lines" });
  });
  return series;
}
