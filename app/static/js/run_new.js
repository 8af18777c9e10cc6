/* New run page: a form of every config field; POST /api/runs; errors beside their fields. */
"use strict";

(() => {
  const { api, pageData } = RL;
  const form = document.getElementById("run-form");
  const formError = document.getElementById("form-error");
  const status = document.getElementById("submit-status");
  const submit = document.getElementById("submit");
  const cfg = ConfigForm.build(document.getElementById("fields"), pageData.schema, { prefix: "run" });

  function showFormErrors(messages) {
    RL.clear(formError);
    formError.hidden = !messages.length;
    if (!messages.length) return;
    formError.append(
      RL.el("strong", {}, "The run was not started:"),
      RL.el("ul", {}, messages.map((m) => RL.el("li", {}, m))),
    );
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    cfg.clearErrors();
    showFormErrors([]);
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
        const first = form.querySelector(".invalid");
        if (first) first.focus();
      } else if (e.status !== 401) {
        showFormErrors([e.message]);
      }
    } finally {
      submit.disabled = false;
    }
  });

  document.getElementById("reset").addEventListener("click", () => {
    cfg.reset();
    showFormErrors([]);
  });

  document.getElementById("fill-smoke").addEventListener("click", () => {
    cfg.set({ dataset: "digits", width: 8, epochs: 3, batch_size: 64, train_limit: 512, test_limit: 256 });
    RL.toast("Filled a quick smoke test: digits, width 8, 3 epochs.");
  });

  // /runs/new?copy=7 starts from run 7's config
  if (pageData.copy) {
    api(`/api/runs/${pageData.copy}`)
      .then((run) => {
        cfg.set(run.config || {});
        const note = document.getElementById("copy-note");
        note.hidden = false;
        note.append(`Starting from the config of `, RL.el("a", { href: `/runs/${run.id}` }, `run #${run.id}`), ".");
      })
      .catch((e) => showFormErrors([`Could not load run #${pageData.copy}: ${e.message}`]));
  }
})();
