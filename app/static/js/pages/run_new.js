/* New run page: a form of every config field, checked against the schema in the browser,
 * with the training time it would take; POST /api/runs; the server's errors beside their
 * fields; what was typed kept across a login. */

import { api } from "../lib/api.js";
import { build } from "../lib/configform.js";
import { showReadiness } from "../lib/datasets.js";
import { byId, clear, debounce, el, toast } from "../lib/dom.js";
import { keepDraft, takeDraft } from "../lib/draft.js";
import { timeParts } from "../lib/estimate.js";
import { pageData } from "../lib/page.js";

const form = byId("run-form");
const formError = byId("form-error");
const status = byId("submit-status");
const submit = byId("submit");
const cfg = build(byId("fields"), pageData.schema, { prefix: "run" });
showReadiness(byId("run-dataset"));

function showFormErrors(messages) {
  clear(formError);
  formError.hidden = !messages.length;
  if (!messages.length) return;
  formError.append(el("strong", {}, "The run was not started:"), el("ul", {}, messages.map((m) => el("li", {}, m))));
}

function focusFirstError() {
  const first = form.querySelector(".invalid");
  if (first) first.focus();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  showFormErrors([]);
  if (cfg.checkAll().length) {
    showFormErrors(["Fix the fields marked in red."]);
    focusFirstError();
    return;
  }
  submit.disabled = true;
  status.textContent = "Submitting…";
  try {
    const run = await api("/api/runs", { method: "POST", body: cfg.values() });
    status.textContent = `Run #${run.id} queued — opening it…`;
    location.href = `/runs/${run.id}`;
    return;
  } catch (e) {
    status.textContent = "";
    if (e.status === 422) {
      const general = [];
      for (const err of e.fieldErrors) {
        if (!cfg.setError(err.field, err.msg)) general.push(err.path.length ? `${err.path.join(".")}: ${err.msg}` : err.msg);
      }
      showFormErrors(general.length ? general : ["Fix the fields marked in red."]);
      focusFirstError();
    } else if (e.status === 401) {
      keepDraft(cfg.values()); // the login page opens: the form comes back after it
    } else {
      showFormErrors([e.message]);
    }
  } finally {
    submit.disabled = false;
  }
});

byId("reset").addEventListener("click", () => {
  cfg.reset();
  showFormErrors([]);
  estimate();
});

byId("fill-smoke").addEventListener("click", () => {
  cfg.set(pageData.smoke);
  cfg.fields.dataset.input.dispatchEvent(new Event("change"));
  toast("Filled a quick smoke test: digits, width 8, 3 epochs.");
});

// ------------------------------------------------------------------ the training time

// As the New grid form works it out (one run is a grid of one cell); the seed does not
// change the time, so any valid one is sent. Asked in the background: a 401 says so here
// instead of leaving the form for the login page.
const estimateBox = byId("estimate");
let estimateSeq = 0;
const estimate = debounce(async () => {
  const seq = ++estimateSeq;
  const { seed, dataset, ...base } = cfg.values();
  const body = { base, grid: { dataset: [dataset] }, seeds: [0] };
  let parts;
  try {
    parts = timeParts(await api("/api/sweeps/estimate", { method: "POST", body, login: false }));
  } catch (e) {
    const why = e.status === 401 ? "log in to see it" : e.status === 422 ? `fix the config first (${e.message})` : e.message;
    parts = [el("span", { class: "muted", id: "estimate-none" }, `Training time: ${why}.`)];
  }
  if (seq === estimateSeq) clear(estimateBox).append(...parts);
}, 350);
form.addEventListener("input", estimate);
form.addEventListener("change", estimate);

// ------------------------------------------------------------------ where the form starts

const kept = takeDraft();
if (kept) {
  // back from the login page that a submission opened: what was typed, as it was
  cfg.set(kept);
  cfg.fields.dataset.input.dispatchEvent(new Event("change"));
  const note = byId("draft-note");
  note.hidden = false;
  note.textContent = "Your entries were kept while you logged in: check them and press Start run.";
} else if (pageData.copy) {
  // /runs/new?copy=7 starts from run 7's config
  api(`/api/runs/${pageData.copy}`)
    .then((run) => {
      cfg.set(run.config || {});
      cfg.fields.dataset.input.dispatchEvent(new Event("change"));
      const note = byId("copy-note");
      note.hidden = false;
      note.append("Starting from the config of ", el("a", { href: `/runs/${run.id}` }, `run #${run.id}`), ".");
    })
    .catch((e) => showFormErrors([`Could not load run #${pageData.copy}: ${e.message}`]));
}
estimate();
