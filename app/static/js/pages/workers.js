/* Workers page: live workers with their device readings and current run, and the queue
 * with its drain estimate, refreshed every few seconds from GET /api/workers. */

import { api, brokerReachable } from "../lib/api.js";
import { byId, clear, el, poll } from "../lib/dom.js";
import { duration, eta } from "../lib/format.js";
import { progressBar } from "../lib/status.js";

const GIB = 2 ** 30;

function stat(label, value) {
  return el("div", { class: "stat" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
}

function device(w) {
  if (!w.device_kind) return el("span", { class: "muted" }, "not reported");
  const threads = w.cpu_threads ? `${w.cpu_threads} thread${w.cpu_threads === 1 ? "" : "s"}` : null;
  const kind = w.device_kind === "cuda" ? "GPU" : "CPU";
  const sharing = [
    w.device_kind === "cpu" ? threads : null,
    w.slots > 1 ? `${w.slots} slots` : null,
    w.pack > 1 ? `packs ${w.pack} runs` : null,
  ].filter(Boolean);
  return [el("span", { class: "badge" }, kind), " ", w.device_name || "unknown", sharing.length ? el("span", { class: "muted small" }, ` · ${sharing.join(" · ")}`) : null];
}

function memory(w) {
  if (w.memory_total_bytes === null || w.memory_total_bytes === undefined) return "—";
  const used = w.memory_used_bytes === null ? "?" : (w.memory_used_bytes / GIB).toFixed(1);
  return `${used} / ${(w.memory_total_bytes / GIB).toFixed(1)} GiB`;
}

/** A table cell; `title` names it on a phone, where each worker is a card with no header row. */
function cell(cls, title, content) {
  return el("td", { class: cls, "data-label": title }, content);
}

const percent = (x) => (x === null || x === undefined ? "—" : `${Math.round(x)}%`);
const celsius = (x) => (x === null || x === undefined ? "—" : `${Math.round(x)} °C`);

function training(run) {
  if (!run) return el("span", { class: "muted" }, "idle");
  const fraction = run.epochs_total ? run.epochs_done / run.epochs_total : 0;
  return [
    el("a", { href: `/runs/${run.id}` }, `#${run.id}`, run.name ? ` ${run.name}` : ""),
    el("div", { class: "small muted" }, run.summary),
    progressBar(fraction, { small: true }),
    el("span", { class: "small muted" }, `epoch ${run.epochs_done} / ${run.epochs_total}`),
  ];
}

function showQueue(q) {
  clear(byId("queue-stats")).append(
    stat("Queued", q.depth),
    stat("Running", q.running),
    stat("Drains in", q.estimated_drain_seconds === null ? "unknown" : eta(q.estimated_drain_seconds)),
  );
  byId("queue-basis").textContent = q.basis;
  brokerReachable().then((up) => {
    const box = byId("broker-down");
    box.hidden = up !== false;
    box.textContent = up === false
      ? "The broker does not answer: queued runs wait for it, not for a free worker. They are stored and sent again once it is back."
      : "";
  });
}

async function refresh() {
  let body;
  try {
    body = await api("/api/workers");
  } catch (e) {
    if (e.status === 401) return;
    const box = byId("workers-error");
    box.hidden = false;
    box.textContent = `Could not load workers: ${e.message}`;
    return;
  }
  byId("workers-error").hidden = true;
  showQueue(body.queue);
  const rows = clear(byId("workers-body"));
  if (!body.workers.length) {
    rows.append(el("tr", {}, el("td", { colspan: 9, class: "empty" }, "No worker has reported in lately. Start one with `resnet-lab worker`.")));
    return;
  }
  for (const w of body.workers) {
    rows.append(
      el(
        "tr",
        { "data-worker": w.name },
        cell("c-name c-head nowrap", null, w.name),
        cell("c-host", "Host", w.host || "—"),
        cell("c-pid num", "PID", w.pid ?? "—"),
        cell("c-device c-wide", null, device(w)),
        cell("c-utilisation num", "Utilisation", percent(w.utilization)),
        cell("c-memory num nowrap", "Memory", memory(w)),
        cell("c-temp num", "Temp.", celsius(w.temperature_c)),
        cell("c-heartbeat num nowrap", "Heartbeat", `${duration(w.heartbeat_age_seconds)} ago`),
        cell("c-training c-wide", "Training", training(w.run)),
      ),
    );
  }
}

refresh();
poll(refresh, 3000);
