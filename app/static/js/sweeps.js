/* Grids page: every sweep with its progress, refreshed live. */
"use strict";

(() => {
  const { el, api, clear, label, fieldLabel } = RL;
  const PAGE = 50;
  let offset = 0;

  function chipsOf(counts) {
    const out = [];
    for (const s of RL.STATUSES) {
      if (counts && counts[s]) out.push(el("span", { class: `badge st-${s}` }, `${counts[s]} ${s}`), " ");
    }
    return out.length ? out : "—";
  }

  async function refresh() {
    let page;
    try {
      page = await api(`/api/sweeps?limit=${PAGE}&offset=${offset}`);
    } catch (e) {
      if (e.status === 401) return;
      const box = document.getElementById("sweeps-error");
      box.hidden = false;
      box.textContent = `Could not load grids: ${e.message}`;
      return;
    }
    document.getElementById("sweeps-error").hidden = true;
    const items = page.items || [];
    const total = page.total ?? items.length;
    document.getElementById("sweeps-empty").hidden = total > 0;
    document.getElementById("sweeps-panel").hidden = total === 0;
    const body = clear(document.getElementById("sweeps-body"));
    for (const s of items) {
      const active = ((s.counts || {}).queued || 0) + ((s.counts || {}).running || 0);
      const base = s.base || {};
      body.append(
        el(
          "tr",
          { "data-sweep": s.id },
          el("td", {}, el("a", { href: `/sweeps/${s.id}` }, `#${s.id}`)),
          el("td", {}, el("a", { href: `/sweeps/${s.id}` }, s.name || "unnamed"), s.preset ? el("span", { class: "muted small" }, ` (${s.preset})`) : null),
          el("td", { class: "hide-sm" }, label("dataset", base.dataset || "cifar10")),
          el("td", {}, (s.factors || []).map(fieldLabel).join(" × ") || "—"),
          el("td", { class: "num" }, s.total_runs ?? (s.run_ids || []).length),
          el("td", {}, chipsOf(s.counts)),
          el("td", {}, RL.progressBar(s.progress || 0, { small: true }), el("span", { class: "small muted" }, `${Math.round((s.progress || 0) * 100)}%`)),
          el("td", { class: "num" }, active ? RL.eta(s.eta_seconds) : "—"),
          el("td", { class: "hide-sm" }, RL.when(s.created_at)),
        ),
      );
    }
    const pager = clear(document.getElementById("sweeps-pager"));
    if (total > PAGE) {
      const pages = Math.ceil(total / PAGE);
      const current = Math.floor(offset / PAGE) + 1;
      pager.append(
        el("span", { class: "muted small" }, `${total} grids`),
        el("span", { class: "spacer" }),
        el("button", { type: "button", class: "btn sm", disabled: current <= 1, onclick: () => { offset -= PAGE; refresh(); } }, "‹ Prev"),
        el("span", { class: "small" }, `page ${current} of ${pages}`),
        el("button", { type: "button", class: "btn sm", disabled: current >= pages, onclick: () => { offset += PAGE; refresh(); } }, "Next ›"),
      );
    }
  }

  refresh();
  RL.poll(refresh, 5000);
})();
