/* Compare page: overlaid test-accuracy curves of chosen runs, the config fields that differ,
 * and a parallel-coordinates plot of those fields against final test accuracy. */
"use strict";

(() => {
  const { el, api, clear, pct, label, fieldLabel, pageData } = RL;
  const MAX_RUNS = 60;
  let ids = pageData.run_ids || [];
  let runs = [];
  let metrics = new Map();
  let differing = [];

  function parseIds(text) {
    return [...new Set(text.split(/[\s,]+/).filter((p) => /^\d+$/.test(p)).map(Number))];
  }

  function short(run) {
    const c = run.config || {};
    const parts = differing.slice(0, 4).map((f) => (f === "seed" ? `s${c.seed}` : label(f, c[f])));
    return `#${run.id}${parts.length ? ` ${parts.join(" ")}` : ""}`;
  }

  async function load() {
    const empty = document.getElementById("compare-empty");
    const bodyBox = document.getElementById("compare-body");
    const errBox = document.getElementById("compare-error");
    empty.hidden = ids.length > 0;
    bodyBox.hidden = ids.length === 0;
    if (!ids.length) return;
    const wanted = ids.slice(0, MAX_RUNS);
    const results = await Promise.allSettled(wanted.map((id) => api(`/api/runs/${id}`)));
    runs = results.filter((r) => r.status === "fulfilled").map((r) => r.value);
    const missing = wanted.filter((id, i) => results[i].status === "rejected");
    const notes = [];
    if (missing.length) notes.push(`Not found: ${missing.map((i) => `#${i}`).join(", ")}.`);
    if (ids.length > MAX_RUNS) notes.push(`Showing the first ${MAX_RUNS} of ${ids.length} runs.`);
    errBox.hidden = !notes.length;
    errBox.textContent = notes.join(" ");
    if (!runs.length) {
      bodyBox.hidden = true;
      return;
    }
    const m = await api(`/api/metrics?run_ids=${runs.map((r) => r.id).join(",")}`);
    metrics = new Map((m.runs || []).map((r) => [r.run_id, r.epochs || []]));
    differing = diffFields();
    drawCurves();
    drawTable();
    drawParcoords();
  }

  function diffFields() {
    const fields = [];
    for (const r of runs) for (const k of Object.keys(r.config || {})) if (!fields.includes(k)) fields.push(k);
    return fields.filter((f) => new Set(runs.map((r) => JSON.stringify((r.config || {})[f]))).size > 1);
  }

  function drawCurves() {
    const showTrain = document.getElementById("show-train").checked;
    const series = [];
    runs.forEach((run, i) => {
      const epochs = metrics.get(run.id) || [];
      const x = epochs.map((e) => e.epoch);
      const color = Charts.PALETTE[i % Charts.PALETTE.length];
      series.push({ name: short(run), group: `r${run.id}`, x, y: epochs.map((e) => e.test_acc), color });
      if (showTrain) {
        series.push({ name: `${short(run)} train`, group: `r${run.id}`, x, y: epochs.map((e) => e.train_acc), color, dash: "dot", width: 1.5 });
      }
    });
    Charts.curves(document.getElementById("compare-curves"), series, { ytitle: "test accuracy (%)", percent: true });
  }

  function drawTable() {
    const table = clear(document.getElementById("diff-table"));
    table.append(
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "field"), runs.map((r) => el("th", { scope: "col" }, el("a", { href: `/runs/${r.id}` }, `#${r.id}`))))),
    );
    const body = el("tbody");
    const row = (name, values, cls) => body.append(el("tr", {}, el("th", { scope: "row" }, name), values.map((v) => el("td", { class: cls || "" }, v))));
    row("status", runs.map((r) => RL.badge(r.status)));
    row("final test acc.", runs.map((r) => pct(r.final_test_acc)));
    row("best test acc.", runs.map((r) => pct(r.best_test_acc)));
    row("epochs done", runs.map((r) => `${r.epochs_done ?? 0}/${r.epochs_total ?? (r.config || {}).epochs ?? "?"}`));
    row("duration", runs.map((r) => RL.duration(r.duration_seconds)));
    for (const f of differing) row(f, runs.map((r) => label(f, (r.config || {})[f])), "changed");
    if (!differing.length) {
      body.append(el("tr", {}, el("td", { colspan: runs.length + 1, class: "muted" }, "Every config field is the same in these runs.")));
    }
    table.append(body);
  }

  function drawParcoords() {
    const div = document.getElementById("compare-parcoords");
    const note = document.getElementById("parcoords-note");
    const done = runs.filter((r) => r.final_test_acc !== null && r.final_test_acc !== undefined);
    if (done.length < 2) {
      Plotly.purge(div);
      div.hidden = true;
      note.textContent = "Needs at least two finished runs; running ones appear when they finish.";
      return;
    }
    div.hidden = false;
    note.textContent = `${done.length} finished run${done.length === 1 ? "" : "s"}; drag along an axis to filter.${differing.length ? "" : " No config field differs, so only accuracy is shown."}`;
    const dims = differing.map((f) => {
      const vals = done.map((r) => (r.config || {})[f]);
      if (vals.every((v) => typeof v === "number")) return { label: fieldLabel(f), values: vals };
      const cats = [...new Set(vals.map((v) => JSON.stringify(v)))];
      return {
        label: fieldLabel(f),
        values: vals.map((v) => cats.indexOf(JSON.stringify(v))),
        tickvals: cats.map((_, i) => i),
        ticktext: cats.map((c) => label(f, JSON.parse(c))),
        range: [-0.25, cats.length - 0.75],
      };
    });
    const acc = done.map((r) => r.final_test_acc * 100);
    dims.push({ label: "final test acc. (%)", values: acc, tickformat: ".1f" });
    Charts.parcoords(div, { dimensions: dims, color: acc, colorTitle: "final test acc. (%)" });
  }

  document.getElementById("show-train").addEventListener("change", drawCurves);
  document.getElementById("ids-form").addEventListener("submit", (e) => {
    e.preventDefault();
    ids = parseIds(document.getElementById("ids-input").value);
    history.pushState(null, "", ids.length ? `/compare?run_ids=${ids.join(",")}` : "/compare");
    load().catch((err) => RL.toast(err.message, "error"));
  });

  load().catch((err) => RL.toast(err.message, "error"));
  RL.poll(async () => {
    if (runs.some((r) => RL.ACTIVE.has(r.status))) await load();
  }, 5000);
})();
