/* Grids page: every sweep with its progress and its best cell so far, refreshed live. */

import { api } from "../lib/api.js";
import { byId, clear, el, poll } from "../lib/dom.js";
import { eta, fieldLabel, label, pct, when } from "../lib/format.js";
import { STATUSES, progressBar } from "../lib/status.js";

const PAGE = 50;
let offset = 0;

function chipsOf(counts) {
  const out = [];
  for (const s of STATUSES) {
    if (counts && counts[s]) out.push(el("span", { class: `badge st-${s}` }, `${counts[s]} ${s}`), " ");
  }
  return out.length ? out : "—";
}

function bestOf(best) {
  if (!best) return "—";
  const cell = Object.entries(best.key || {}).map(([f, v]) => label(f, v)).join(" · ") || "all runs";
  return [el("span", { class: "best-key" }, cell), " ", el("strong", {}, pct(best.mean)), el("span", { class: "muted small" }, ` n=${best.n}`)];
}

/** A table cell; `title` names it on a phone, where each grid is a card with no header row. */
function cell(cls, title, content, attrs = {}) {
  return el("td", { class: cls, "data-label": title, ...attrs }, content);
}

async function refresh() {
  let page;
  try {
    page = await api(`/api/sweeps?limit=${PAGE}&offset=${offset}`);
  } catch (e) {
    if (e.status === 401) return;
    const box = byId("sweeps-error");
    box.hidden = false;
    box.textContent = `Could not load grids: ${e.message}`;
    return;
  }
  byId("sweeps-error").hidden = true;
  const items = page.items || [];
  const total = page.total ?? items.length;
  byId("sweeps-empty").hidden = total > 0;
  byId("sweeps-panel").hidden = total === 0;
  const body = clear(byId("sweeps-body"));
  for (const s of items) {
    const active = ((s.counts || {}).queued || 0) + ((s.counts || {}).running || 0);
    const base = s.base || {};
    body.append(
      el(
        "tr",
        { "data-sweep": s.id },
        cell("c-id", null, el("a", { href: `/sweeps/${s.id}` }, `#${s.id}`)),
        cell("c-name c-head", null, [el("a", { href: `/sweeps/${s.id}` }, s.name || "unnamed"), s.preset ? el("span", { class: "muted small" }, ` (${s.preset})`) : null]),
        cell("c-dataset", "Dataset", label("dataset", base.dataset || "cifar10")),
        cell("c-factors", "Factors", (s.factors || []).map(fieldLabel).join(" × ") || "—"),
        cell("c-runs num", "Runs", s.total_runs ?? (s.run_ids || []).length),
        cell("c-status c-wide", null, chipsOf(s.counts)),
        cell("c-progress", "Progress", [progressBar(s.progress || 0, { small: true }), el("span", { class: "small muted" }, `${Math.round((s.progress || 0) * 100)}%`)]),
        cell("c-best best c-wide", "Best cell", bestOf(s.best), { "data-best": s.best ? s.best.mean : "" }),
        cell("c-eta num", "ETA", active ? eta(s.eta_seconds) : "—"),
        cell("c-created nowrap", "Created", when(s.created_at)),
      ),
    );
  }
  const pager = clear(byId("sweeps-pager"));
  if (total > PAGE) {
    const pages = Math.ceil(total / PAGE);
    const current = Math.floor(offset / PAGE) + 1;
    const go = (delta) => {
      offset += delta;
      refresh();
    };
    pager.append(
      el("span", { class: "muted small" }, `${total} grids`),
      el("span", { class: "spacer" }),
      el("button", { type: "button", class: "btn sm", disabled: current <= 1, onclick: () => go(-PAGE) }, "‹ Prev"),
      el("span", { class: "small" }, `page ${current} of ${pages}`),
      el("button", { type: "button", class: "btn sm", disabled: current >= pages, onclick: () => go(PAGE) }, "Next ›"),
    );
  }
}

refresh();
poll(refresh, 5000);
