/* The run's name, tags and note: shown in the page head, edited in the Notes card, saved
 * with PATCH /api/runs/{id}. */

import { api } from "../lib/api.js";
import { byId, clear, el, toast } from "../lib/dom.js";

/** "baseline, relu  seed-0" -> ["baseline", "relu", "seed-0"] */
export function parseTags(text) {
  return [...new Set(text.split(/[\s,]+/).map((t) => t.trim().toLowerCase()).filter(Boolean))];
}

export class RunNotes {
  constructor(runId, onSaved) {
    this.runId = runId;
    this.onSaved = onSaved;
    this.form = byId("notes-form");
    this.inputs = { name: byId("run-name"), tags: byId("run-tags"), note: byId("run-note-text") };
    this.dirty = false;
    this.form.addEventListener("input", () => (this.dirty = true));
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.save();
    });
  }

  /** Fill the form from the run, unless the user is editing it. */
  show(run) {
    const head = clear(byId("run-name-head"));
    if (run.name) head.append(run.name);
    clear(byId("run-tags-head")).append(...(run.tags || []).map((t) => el("a", { class: "tag", href: `/?tag=${encodeURIComponent(t)}` }, t)));
    if (this.dirty) return;
    this.inputs.name.value = run.name || "";
    this.inputs.tags.value = (run.tags || []).join(", ");
    this.inputs.note.value = run.note || "";
  }

  clearErrors() {
    for (const key of Object.keys(this.inputs)) {
      const err = byId(`notes-${key}-err`);
      err.hidden = true;
      err.textContent = "";
      this.inputs[key].classList.remove("invalid");
    }
  }

  async save() {
    this.clearErrors();
    const body = {
      name: this.inputs.name.value.trim() || null,
      tags: parseTags(this.inputs.tags.value),
      note: this.inputs.note.value.trim() || null,
    };
    const status = byId("notes-status");
    status.textContent = "Saving…";
    try {
      const run = await api(`/api/runs/${this.runId}`, { method: "PATCH", body });
      this.dirty = false;
      status.textContent = "Saved.";
      this.onSaved(run);
    } catch (e) {
      status.textContent = "";
      if (e.status === 422) {
        for (const err of e.fieldErrors) {
          const key = err.path[0];
          const box = byId(`notes-${key}-err`);
          if (!box) continue;
          box.hidden = false;
          box.textContent = err.msg;
          this.inputs[key].classList.add("invalid");
        }
      } else if (e.status !== 401) {
        toast(`Not saved: ${e.message}`, "error");
      }
    }
  }
}
