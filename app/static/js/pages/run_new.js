/* New run page: a form of every config field, checked against the schema in the browser;
 * POST /api/runs; the server's errors beside their fields. */

import { api } from "../lib/api.js";
import { build } from "../lib/configform.js";
import { showReadiness } from "../lib/datasets.js";
import { byId, clear, el, toast } from "../lib/dom.js";
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
    } else if (e.status !== 401) {
      showFormErrors([e.message]);
    }
  } finally {
    submit.disabled = false;
  }
});

byId("reset").addEventListener("click", () => {
  cfg.reset();
  showFormErrors([]);
});

byId("fill-smoke").addEventListener("click", () => {
  cfg.set(pageData.smoke);
  cfg.fields.dataset.input.dispatchEvent(new Event("change"));
  toast("Filled a quick smoke test: digits, width 8, 3 epochs.");
});

// /runs/new?copy=7 starts from run 7's config
if (pageData.copy) {
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
