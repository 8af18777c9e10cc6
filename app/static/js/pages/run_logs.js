/* The run page's Logs panel: the worker's last lines about the run, followed while it can
 * still change (GET /api/runs/{id}/logs?after=<last id seen>). */

import { api } from "../lib/api.js";
import { byId, clear, el } from "../lib/dom.js";
import { when } from "../lib/format.js";

export class RunLogs {
  constructor(runId) {
    this.runId = runId;
    this.last = 0;
    this.box = byId("run-logs");
  }

  async refresh() {
    const page = await api(`/api/runs/${this.runId}/logs?after=${this.last}&limit=500`);
    if (!page.lines.length) {
      if (!this.last) clear(this.box).append(el("span", { class: "muted" }, "No log lines yet."));
      return;
    }
    if (!this.last) clear(this.box);
    const atBottom = this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight < 20;
    for (const line of page.lines) {
      this.box.append(
        el("div", { class: `log-line log-${line.level}` }, `${when(line.at)}  ${line.level.padEnd(7)} ${line.message}`),
      );
      this.last = line.id;
    }
    while (this.box.childElementCount > 500) this.box.firstElementChild.remove();
    if (atBottom) this.box.scrollTop = this.box.scrollHeight;
  }
}
