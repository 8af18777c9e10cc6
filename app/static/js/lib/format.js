/* How values read on every page: factor labels (one spelling each), percentages, durations
 * and timestamps. */

// The one spelling of each factor value, used by every table, chart and form.
const LABELS = {
  activation: { relu: "ReLU", leaky_relu: "LeakyReLU", tanh: "tanh", sigmoid: "sigmoid" },
  augmentation: {
    none: "none",
    crop_flip: "crop + flip",
    crop_flip_blur_color: "crop + flip + blur + colour",
  },
  dataset: { cifar10: "CIFAR-10", fashion_mnist: "Fashion-MNIST", digits: "digits" },
};

const FIELD_LABELS = {
  lr_ratio: "LR ratio",
  lr: "learning rate",
  batch_size: "batch size",
  weight_decay: "weight decay",
};

/** Human name of a factor value: label("activation", "leaky_relu") = "LeakyReLU". */
export function label(field, value) {
  if (value === null || value === undefined) return "—";
  const names = LABELS[field];
  if (names && Object.prototype.hasOwnProperty.call(names, value)) return names[value];
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

export function fieldLabel(field) {
  return FIELD_LABELS[field] || String(field).replace(/_/g, " ");
}

/** 0.9514 -> "95.14%". Accuracies from the API are fractions in 0..1. */
export function pct(x, digits = 2) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  return `${(x * 100).toFixed(digits)}%`;
}

/** Seconds -> "45 s", "12 min 05 s", "3 h 07 min", "2 d 4 h". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${String(m % 60).padStart(2, "0")} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function eta(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  return `~${duration(seconds)}`;
}

/** A timestamp with its date, always: "28 Nov, 14:02" (the year when it is not this one). */
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const opts = { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
  if (d.getFullYear() !== new Date().getFullYear()) opts.year = "numeric";
  return d.toLocaleString(undefined, opts);
}

export function num(x, digits = 4) {
  if (x === null || x === undefined) return "—";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en");
  return String(Number(x.toPrecision(digits)));
}

/** "1,234 img/s"; null -> "—". */
export function rate(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "—";
  return `${Math.round(x).toLocaleString("en")} img/s`;
}

/** The factors of a run's config as one short line: "digits · ReLU · 2:1:1 · crop + flip". */
export function factorLine(config) {
  const c = config || {};
  return [
    label("dataset", c.dataset),
    label("activation", c.activation),
    c.lr_ratio,
    label("augmentation", c.augmentation),
    `seed ${c.seed ?? 0}`,
  ]
    .filter((x) => x !== undefined)
    .join(" · ");
}

/** A config value for tables: its label, and the raw value beside it when they differ. */
export function configValue(field, value) {
  const shown = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
  const pretty = typeof value === "boolean" ? shown : label(field, value);
  return pretty === shown ? shown : `${pretty} (${shown})`;
}
