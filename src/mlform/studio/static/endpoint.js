// An endpoint's page: its servers' counters looked at again every few seconds, and the
// test-request form.
"use strict";

(function () {
  const root = document.getElementById("endpoint");
  if (!root) return;
  const name = encodeURIComponent(root.dataset.endpoint);
  const EVERY = 3000;

  function ms(seconds) {
    return seconds === null ? "–" : seconds.toFixed(1) + " ms";
  }

  function show(row, live) {
    const cell = (field) => row.querySelector(`[data-field="${field}"]`);
    const state = cell("state");
    state.textContent = !live.answering ? "not answering" : live.ready ? "ready" : "starting";
    state.className = live.answering && live.ready ? "ok" : "error";
    const counted = (v) => (live.answering ? String(v) : "–");
    cell("requests").textContent = counted(live.requests);
    cell("rate").textContent = live.rate === null ? "–" : live.rate.toFixed(2) + "/s";
    live.latency_ms.forEach((v, i) => { cell("p" + i).textContent = ms(v); });
    cell("errors").textContent = counted(live.errors);
    cell("errors").classList.toggle("error", live.errors > 0);
    cell("in_flight").textContent = counted(live.in_flight);
  }

  async function look() {
    try {
      const answer = await fetch(`/endpoints/${name}/live`, { headers: { Accept: "application/json" } });
      if (answer.ok) {
        const live = await answer.json();
        const router = document.getElementById("router");
        router.textContent = live.router_up ? "up" : "down: `mlform apply` starts it";
        router.className = live.router_up ? "ok" : "error";
        for (const row of document.querySelectorAll("#live tr[data-deployment]")) {
          const found = live.deployments[row.dataset.deployment];
          if (found) show(row, found);
        }
        document.body.dataset.looked = String(Number(document.body.dataset.looked || 0) + 1);
      }
    } catch (err) {
      // the studio stopped or restarts: the next look tries again
    }
    setTimeout(look, EVERY);
  }
  setTimeout(look, EVERY);

  const form = document.getElementById("try");
  const said = document.getElementById("try-status");
  const shown = document.getElementById("try-answer");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    said.textContent = "Sending…";
    shown.hidden = true;
    const asked = {
      body: document.getElementById("try-body").value,
      deployment: document.getElementById("try-deployment").value || null,
    };
    try {
      JSON.parse(asked.body);
    } catch (err) {
      said.textContent = `The request is not JSON: ${err.message}`;
      said.className = "error";
      return;
    }
    try {
      const answer = await fetch(`/endpoints/${name}/invoke`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(asked),
      });
      const got = await answer.json();
      if (got.error) {
        said.textContent = got.error;
        said.className = "error";
        return;
      }
      said.textContent = `HTTP ${got.status} in ${got.ms} ms`;
      said.className = got.status < 400 ? "ok" : "error";
      shown.textContent = got.body;
      shown.hidden = false;
    } catch (err) {
      said.textContent = `The studio did not answer: ${err}`;
      said.className = "error";
    }
  });
})();
