/* The run page's attempt history: each attempt's worker, start, end and how it ended (a
 * crash names the signal and the epoch and batch it hit), so "Attempts 4" is never the
 * only clue (GET /api/runs/{id}/attempts). */

import { api } from "../lib/api.js";
import { byId, clear, el } from "../lib/dom.js";
import { when } from "../lib/format.js";

export class RunAttempts {
  constructor(runId) {
    this.runId = runId;
    this.card = byId("attempts");
    this.body = byId("attempts-table").tBodies[0];
    this.summary = byId("attempts-summary");
  }

  async refresh() {
    const page = await api(`/api/runs/${this.runId}/attempts`);
    this.card.hidden = page.attempts.length === 0;
    clear(this.body);
    for (const a of page.attempts) {
      this.body.append(
        el(
          "tr",
          { class: a.outcome ? `attempt-${a.outcome}` : "" },
          el("td", { class: "num" }, String(a.attempt)),
          el("td", {}, a.worker),
          el("td", {}, when(a.started_at)),
          el("td", {}, a.ended_at ? when(a.ended_at) : "—"),
          el("td", {}, a.outcome ?? "under way"),
          el("td", { class: "detail" }, a.detail ?? ""),
        ),
      );
    }
    this.summary.textContent = page.crashes
      ? `${page.crashes} worker crash${page.crashes === 1 ? "" : "es"}, the last in ${page.last_crash_at ?? "an unknown place"}`
      : "";
  }
}
