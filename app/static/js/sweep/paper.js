/* The report's table beside ours, for a grid over exactly the report's three factors. */

import { byId, clear, el } from "../lib/dom.js";
import { label } from "../lib/format.js";
import { pageData } from "../lib/page.js";
import { factorValues, fmtMean, key, state } from "./state.js";

export function renderPaper() {
  const card = byId("paper-card");
  const cells = state.sweep.cells || [];
  const need = ["augmentation", "activation", "lr_ratio"];
  const factors = state.sweep.factors || [];
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
  const table = clear(byId("paper-table"));
  table.append(
    el(
      "thead",
      {},
      el("tr", {}, el("th", { rowspan: 2 }, "Augmentation"), el("th", { rowspan: 2 }, "Activation"), ratios.map((r) => el("th", { colspan: 3, class: "center" }, `LR ${r}`))),
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
          const star = c.paper_p_value !== null && c.paper_p_value !== undefined && c.paper_p_value < 0.05 ? " *" : "";
          diff = `${d > 0 ? "+" : d < 0 ? "−" : "±"}${Math.abs(d).toFixed(2)}${star}`;
        }
        tds.push(el("td", { class: "num" }, ours), el("td", { class: "num" }, paper), el("td", { class: "num" }, diff));
      }
      body.append(el("tr", {}, tds));
    }
  }
  table.append(body);
}
