/* Marginal means per factor: bars from 0 with ± std error bars, from the server's summary. */

import * as Charts from "../lib/charts.js";
import { byId, clear, el } from "../lib/dom.js";
import { fieldLabel, label } from "../lib/format.js";
import { state } from "./state.js";

export function renderMarginals() {
  const box = byId("marginals");
  const marginals = state.sweep.marginals || {};
  const names = Object.keys(marginals).filter((f) => (marginals[f] || []).some((m) => m.n));
  if (!names.length) {
    clear(box).append(el("p", { class: "muted" }, "Marginal means appear as runs succeed."));
    return;
  }
  if (box.querySelector("p")) clear(box);
  for (const child of [...box.children]) if (!names.includes(child.dataset.factor)) child.remove();
  // every panel first, so that each chart is drawn at its final width
  const wraps = names.map((f) => {
    let wrap = box.querySelector(`[data-factor="${CSS.escape(f)}"]`);
    if (!wrap) {
      wrap = el("div", { class: "panel", dataset: { factor: f } }, el("div", { class: "chart short" }));
      box.append(wrap);
    }
    return wrap;
  });
  names.forEach((f, i) => {
    const wrap = wraps[i];
    const rows = marginals[f].filter((m) => m.n);
    Charts.bars(wrap.firstChild, {
      x: rows.map((m) => label(f, m.value)),
      y: rows.map((m) => m.mean),
      error: rows.map((m) => m.std || 0),
      text: rows.map((m) => `${(m.mean * 100).toFixed(1)}% (n=${m.n})`),
      percent: true,
      title: `By ${fieldLabel(f)}`,
      xtitle: fieldLabel(f),
      ytitle: "mean final test acc. (%)",
      color: Charts.PALETTE[i % Charts.PALETTE.length],
    });
  });
}
