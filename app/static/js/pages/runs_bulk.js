/* The runs page's bulk actions: tag, untag, cancel, retry or delete the selected runs (by id,
 * or every run the filters match) in one request (POST /api/runs/bulk), after a confirmation
 * that says how many runs; the dialog then tells what was done and what was skipped, why. */

import { api } from "../lib/api.js";
import { byId, clear, el } from "../lib/dom.js";

const runs = (n) => `${n.toLocaleString("en")} run${n === 1 ? "" : "s"}`;

// What each action is called in the dialog; tags: the action takes the tag box's tags.
const ACTIONS = {
  tag: { verb: "Tag", done: "tagged", tags: true, note: "The tags are added to each run's own." },
  untag: { verb: "Untag", done: "untagged", tags: true, note: "The tags are removed from each run that has them." },
  cancel: {
    verb: "Cancel",
    done: "cancelled",
    danger: true,
    note: "Queued runs are cancelled at once, running ones stop within seconds; finished runs are skipped.",
  },
  retry: {
    verb: "Retry",
    done: "queued again",
    note: "Failed, cancelled and lost runs are queued again and resume from their last checkpoint; others are skipped.",
  },
  delete: {
    verb: "Delete",
    done: "deleted",
    danger: true,
    note: "Finished runs are removed with their metrics and checkpoints; queued and running ones are skipped.",
  },
};

/** The tag box's text as tags: words separated by commas or spaces. */
function tagsOf(text) {
  return text
    .split(/[\s,]+/)
    .map((t) => t.trim())
    .filter(Boolean);
}

/** "2 skipped: already finished (succeeded): #3, #4; not found: #9". */
function skippedLine(results) {
  const byReason = new Map();
  for (const r of results.filter((r) => r.outcome === "skipped")) {
    if (!byReason.has(r.reason)) byReason.set(r.reason, []);
    byReason.get(r.reason).push(`#${r.id}`);
  }
  return [...byReason].map(([reason, ids]) => {
    const shown = ids.length > 12 ? [...ids.slice(0, 12), `… ${ids.length - 12} more`] : ids;
    return el("li", { "data-reason": reason }, `${reason}: ${shown.join(", ")}`);
  });
}

/**
 * Wires the bulk bar's buttons. target() gives what is selected: {ids} or {filter}, with
 * count (how many runs) and what (how to name them); done(action, answer) runs after an
 * action went through (the page refreshes, forgets deleted runs).
 */
export function initBulk({ target, done }) {
  const dialog = byId("bulk-dialog");
  const body = byId("bulk-body");
  const confirm = byId("bulk-confirm");
  const back = byId("bulk-back");
  let pending = null;

  back.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    pending = null;
  });

  function ask(action) {
    const spec = ACTIONS[action];
    const sel = target();
    if (!sel.count) return;
    const tags = spec.tags ? tagsOf(byId("bulk-tag").value) : null;
    clear(body);
    confirm.hidden = false;
    confirm.disabled = false;
    confirm.className = `btn ${spec.danger ? "danger" : "primary"}`;
    back.textContent = "Go back";
    if (spec.tags && !tags.length) {
      byId("bulk-title").textContent = `${spec.verb} ${runs(sel.count)}`;
      body.append(el("p", { class: "alert error" }, "Type a tag in the box beside the buttons first."));
      confirm.hidden = true;
      dialog.showModal();
      return;
    }
    const withTags = tags ? ` with ${tags.join(", ")}` : "";
    byId("bulk-title").textContent = `${spec.verb} ${runs(sel.count)}${withTags}?`;
    confirm.textContent = `${spec.verb} ${runs(sel.count)}`;
    body.append(el("p", {}, sel.what), el("p", { class: "small muted" }, spec.note));
    pending = { action, tags, sel };
    dialog.showModal();
    confirm.focus();
  }

  confirm.addEventListener("click", async () => {
    if (!pending) return;
    const { action, tags, sel } = pending;
    pending = null;
    const spec = ACTIONS[action];
    confirm.disabled = true;
    const request = { action, ...(sel.ids ? { ids: sel.ids } : { filter: sel.filter }) };
    if (tags) request.tags = tags;
    let answer;
    clear(body).append(el("p", { class: "loading" }, "Working…"));
    try {
      answer = await api("/api/runs/bulk", { method: "POST", body: request });
    } catch (e) {
      if (e.status === 401) return;
      clear(body).append(el("p", { class: "alert error", id: "bulk-error" }, e.message));
      confirm.hidden = true;
      back.textContent = "Close";
      return;
    }
    byId("bulk-title").textContent = `${spec.verb}: done`;
    const lines = [el("p", { id: "bulk-done", "data-done": answer.done }, `${runs(answer.done)} ${spec.done}.`)];
    if (answer.skipped) {
      lines.push(
        el("p", { id: "bulk-skipped", "data-skipped": answer.skipped }, `${runs(answer.skipped)} skipped:`),
        el("ul", { class: "small" }, skippedLine(answer.results)),
      );
    }
    clear(body).append(...lines);
    confirm.hidden = true;
    back.textContent = "Close";
    back.focus();
    done(action, answer);
  });

  for (const btn of document.querySelectorAll("#bulk-bar [data-bulk]")) {
    btn.addEventListener("click", () => ask(btn.dataset.bulk));
  }
  byId("bulk-tag").addEventListener("keydown", (e) => {
    if (e.key === "Enter") ask("tag");
  });
}
