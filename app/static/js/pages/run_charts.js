/* The run page's charts: accuracy, loss (log-y on demand), the learning rate as steps with
 * the planned schedule dashed ahead of the current epoch, and throughput per epoch. */

import * as Charts from "../lib/charts.js";

const TRAIN = Charts.PALETTE[0];
const TEST = Charts.PALETTE[1];
const PLANNED = "#8a93a6";

/**
 * The learning rate of each epoch 1..epochs, as trainer/schedule.py computes it: lr, lr/10,
 * lr/100 in phases whose lengths follow lr_ratio, boundaries rounded half up in integers.
 */
export function plannedSchedule(config) {
  const epochs = config.epochs;
  const parts = String(config.lr_ratio || "").split(":").map((p) => parseInt(p, 10));
  if (!(epochs >= 1) || parts.length !== 3 || parts.some((p) => !(p > 0))) return [];
  const total = parts[0] + parts[1] + parts[2];
  const b1 = Math.floor((2 * epochs * parts[0] + total) / (2 * total));
  const b2 = Math.floor((2 * epochs * (parts[0] + parts[1]) + total) / (2 * total));
  const out = [];
  for (let e = 1; e <= epochs; e++) {
    const k = (b1 < e ? 1 : 0) + (b2 < e ? 1 : 0);
    out.push({ epoch: e, lr: config.lr / 10 ** k });
  }
  return out;
}

/** Draws every chart of the run page from the epoch rows drawn so far. */
export class RunCharts {
  constructor(divs) {
    this.divs = divs; // {acc, loss, lr, speed}
    this.logLoss = false;
    this.queue = Promise.resolve(); // chart updates run one after another
  }

  then(fn) {
    this.queue = this.queue.then(fn).catch((e) => console.warn("chart update failed:", e));
    return this.queue;
  }

  /** Redraw all four from `epochs` (sorted rows) for `run` (its config and horizon). */
  draw(run, epochs) {
    const x = epochs.map((e) => e.epoch);
    const col = (k) => epochs.map((e) => e[k]);
    const xmax = run.epochs_total || (run.config && run.config.epochs) || undefined;
    return this.then(() =>
      Promise.all([
        Charts.curves(
          this.divs.acc,
          [
            { name: "train", x, y: col("train_acc"), color: TRAIN, dash: "dot" },
            { name: "test", x, y: col("test_acc"), color: TEST },
          ],
          { ytitle: "accuracy (%)", percent: true, xmax },
        ),
        this.drawLoss(run, epochs),
        this.drawLr(run, epochs),
        Charts.curves(this.divs.speed, [{ name: "training images/s", x, y: col("images_per_second"), color: Charts.PALETTE[4] }], {
          ytitle: "training images / s",
          xmax,
          showlegend: false,
        }),
      ]),
    );
  }

  drawLoss(run, epochs) {
    const x = epochs.map((e) => e.epoch);
    const col = (k) => epochs.map((e) => e[k]);
    const xmax = run.epochs_total || (run.config && run.config.epochs) || undefined;
    return Charts.curves(
      this.divs.loss,
      [
        { name: "train", x, y: col("train_loss"), color: TRAIN, dash: "dot" },
        { name: "test", x, y: col("test_loss"), color: TEST },
      ],
      { ytitle: this.logLoss ? "cross-entropy loss (log scale)" : "cross-entropy loss", xmax, logY: this.logLoss },
    );
  }

  setLogLoss(on, run, epochs) {
    this.logLoss = on;
    return this.then(() => this.drawLoss(run, epochs));
  }

  /** Measured LR as solid steps; the rest of the planned schedule dashed from the current epoch. */
  drawLr(run, epochs) {
    const x = epochs.map((e) => e.epoch);
    const last = x.length ? x[x.length - 1] : 0;
    const plan = plannedSchedule(run.config || {}).filter((p) => p.epoch >= Math.max(last, 1));
    const series = [
      { name: "learning rate", x, y: epochs.map((e) => e.lr), color: Charts.PALETTE[2], shape: "hv", mode: "lines+markers" },
    ];
    if (plan.length > 1 || (plan.length === 1 && !last)) {
      series.push({ name: "planned", x: plan.map((p) => p.epoch), y: plan.map((p) => p.lr), color: PLANNED, dash: "dash", shape: "hv", mode: "lines", width: 1.5 });
    }
    const xmax = run.epochs_total || (run.config && run.config.epochs) || undefined;
    return Charts.curves(this.divs.lr, series, { ytitle: "learning rate (log scale)", logY: true, xmax });
  }
}
