/* The training time that POST /api/sweeps/estimate works out from the speed the workers
 * measured, as both forms show it. */

import { el } from "./dom.js";
import { eta } from "./format.js";

/** Epochs, the time on one worker (or that it is not known yet) and what it rests on. */
export function timeParts(est) {
  const known = est.estimated_gpu_seconds !== null && est.estimated_gpu_seconds !== undefined;
  const parts = [
    `${Number(est.epochs).toLocaleString()} epochs`,
    " · training time on one worker ",
    el("strong", { id: "estimate-time", "data-known": known }, known ? eta(est.estimated_gpu_seconds) : "not known yet"),
  ];
  if (est.basis && est.basis.length) parts.push(el("div", { class: "small muted", id: "estimate-basis" }, `Basis: ${est.basis.join("; ")}.`));
  return parts;
}
