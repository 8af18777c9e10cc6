/* The grid's finished runs in parallel coordinates: each factor and the seed (as discrete
 * values) against final test accuracy. */

import * as Charts from "../lib/charts.js";
import { byId } from "../lib/dom.js";
import { fieldLabel, label } from "../lib/format.js";
import { state } from "./state.js";

export function renderParcoords() {
  const div = byId("sweep-parcoords");
  const note = byId("sweep-parcoords-note");
  const done = [...state.runs.values()].filter((r) => r.status === "succeeded" && r.final_test_acc !== null && r.final_test_acc !== undefined);
  if (done.length < 2) {
    Charts.purge(div);
    div.hidden = true;
    note.textContent = "Appears once two runs have succeeded.";
    return;
  }
  div.hidden = false;
  note.textContent = `${done.length} succeeded runs, one line each; point at a line for its values.`;
  const fields = [...(state.sweep.factors || [])];
  if ((state.sweep.seeds || []).length > 1) fields.push("seed");
  const dims = Charts.factorDimensions(fields, done.map((r) => r.config || {}), fieldLabel, label);
  const acc = done.map((r) => r.final_test_acc * 100);
  dims.push({ label: "final test acc. (%)", values: acc, tickformat: ".1f" });
  Charts.parcoords(div, { dimensions: dims, color: acc, colorTitle: "final test acc. (%)" });
}
