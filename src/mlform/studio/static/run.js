// A run's page: its metric charts (uPlot), smoothed on request, and its log as it grows.
"use strict";

(function () {
  const root = document.getElementById("run");
  if (!root) return;
  const runId = root.dataset.run;
  const charts = new Map(); // key → {plot, x, y}

  function smoothed(values, factor) {
    if (!factor) return values;
    const out = new Array(values.length);
    let last = null;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      last = last === null || v === null ? v : last * factor + v * (1 - factor);
      out[i] = last;
    }
    return out;
  }

  function draw(box, key, data, axis) {
    const factor = Number(document.getElementById("smoothing").value);
    const width = Math.max(box.clientWidth, 320);
    const opts = {
      width: width,
      height: 220,
      scales: { x: { time: axis === "time" } },
      series: [
        { label: axis === "time" ? "time" : "step" },
        { label: key, stroke: "#1f5fbf", width: 1.5, value: (u, v) => (v == null ? "–" : v.toPrecision(6)) },
      ],
      axes: [{}, { size: 60 }],
      legend: { live: true },
    };
    const x = axis === "time" ? data.x.map((ms) => ms / 1000) : data.x;
    const y = smoothed(data.y, factor);
    const existing = charts.get(key);
    if (existing) existing.plot.destroy();
    box.textContent = "";
    const started = performance.now();
    const plot = new uPlot(opts, [x, y], box);
    performance.measure("chart:" + key, { start: started, end: performance.now() });
    box.dataset.points = String(data.x.length);
    box.dataset.total = String(data.total);
    charts.set(key, { plot: plot, data: data });
  }

  async function load(axis) {
    const boxes = document.querySelectorAll(".chart[data-key]");
    await Promise.all(
      Array.from(boxes).map(async (box) => {
        const key = box.dataset.key;
        const points = Math.max(box.clientWidth, 320) * 4;
        const url = `/runs/${encodeURIComponent(runId)}/points?key=${encodeURIComponent(key)}&x=${axis}&points=${points}`;
        const answer = await fetch(url, { credentials: "same-origin" });
        if (!answer.ok) {
          box.textContent = `could not load ${key}: ${answer.status}`;
          return;
        }
        draw(box, key, await answer.json(), axis);
      })
    );
    performance.mark("charts-drawn"); // from the page's start: what a person waits for
    document.body.dataset.charts = "drawn";
  }

  const axisChoice = document.getElementById("axis");
  if (axisChoice) {
    axisChoice.addEventListener("change", () => load(axisChoice.value));
    document.getElementById("smoothing").addEventListener("input", () => {
      for (const [key, chart] of charts) {
        draw(document.querySelector(`.chart[data-key="${CSS.escape(key)}"]`), key, chart.data, axisChoice.value);
      }
    });
    load("step");
  } else {
    document.body.dataset.charts = "none";
  }

  const log = document.getElementById("log");
  const source = new EventSource(`/runs/${encodeURIComponent(runId)}/log`);
  source.addEventListener("lines", (event) => {
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(JSON.parse(event.data).join("\n") + "\n");
    if (atEnd) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("end", (event) => {
    source.close();
    root.dataset.logEnded = JSON.parse(event.data);
  });
})();
