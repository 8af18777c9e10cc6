/* Whether each dataset is ready where the workers train (GET /api/datasets), shown beside
 * a form's dataset field before anything is submitted. */

import { api } from "./api.js";
import { el } from "./dom.js";
import { label } from "./format.js";

// In the option (a few words: the select is one form column wide) and in the note under it.
const SHORT = { ready: "ready", download: "to download", missing: "missing" };
const WORDS = { ready: "ready", download: "downloaded on first use", missing: "missing: runs would fail" };

/** The note under the field: the state, then the server's detail, which may already say it
 * ("downloaded on first use (about 170 MB)" is not said twice). */
export function noteText(d) {
  const word = WORDS[d.state];
  return d.detail.startsWith(word) ? d.detail : `${word}: ${d.detail}`;
}

/** Mark the options of a dataset <select> and keep a note under it for the chosen one. */
export async function showReadiness(select) {
  if (!select) return;
  let list;
  try {
    list = await api("/api/datasets");
  } catch (e) {
    return; // the form works without it
  }
  const byName = new Map(list.map((d) => [d.dataset, d]));
  for (const option of select.options) {
    const d = byName.get(option.value);
    if (d) option.textContent = `${label("dataset", d.dataset)} — ${SHORT[d.state]}`;
  }
  const note = el("div", { class: "dataset-note", id: `${select.id}-ready`, "aria-live": "polite" });
  select.insertAdjacentElement("afterend", note);
  const update = () => {
    const d = byName.get(select.value);
    note.className = `dataset-note ds-${d ? d.state : "unknown"}`;
    note.textContent = d ? noteText(d) : "";
  };
  select.addEventListener("change", update);
  update();
}
