// Runs side by side: each metric's curves overlaid (uPlot), and parallel coordinates of
// the numeric params against a chosen metric (SVG).
"use strict";

(function () {
  const root = document.getElementById("compare");
  if (!root) return;
  const ids = root.dataset.runs.split(",");
  const data = JSON.parse(document.getElementById("coordinates").textContent);
  const colours = ["#1f5fbf", "#c0392b", "#1e8449", "#8e44ad", "#b9770e", "#117a65", "#2c3e50", "#a93226", "#5b2c6f", "#0e6655"];

  async function overlay(box) {
    const key = box.dataset.key;
    const curves = await Promise.all(
      ids.map(async (id) => {
        const answer = await fetch(`/runs/${encodeURIComponent(id)}/points?key=${encodeURIComponent(key)}&points=2000`);
        return answer.ok ? answer.json() : { x: [], y: [] };
      })
    );
    const joined = uPlot.join(curves.map((c) => [c.x, c.y]));
    const series = [{ label: "step" }].concat(
      data.runs.map((run, i) => ({ label: run.name, stroke: colours[i % colours.length], width: 1.5, spanGaps: true }))
    );
    new uPlot({ width: Math.max(box.clientWidth, 320), height: 240, series: series, legend: { live: true } }, joined, box);
  }

  function parallel(target) {
    const svg = document.getElementById("parallel");
    if (!svg) return;
    const axes = data.axes.concat([target]);
    const width = svg.clientWidth || 800, height = 320, top = 30, bottom = 30, left = 60, right = 60;
    const value = (run, axis) => (axis === target && !(axis in run.params) ? run.metrics[axis] : run.params[axis]);
    const scales = axes.map((axis) => {
      const values = data.runs.map((run) => value(run, axis)).filter((v) => v !== undefined && v !== null);
      const low = Math.min(...values), high = Math.max(...values);
      return (v) => (high === low ? (top + height - bottom) / 2 : height - bottom - ((v - low) / (high - low)) * (height - top - bottom));
    });
    const x = (i) => left + (axes.length === 1 ? 0 : (i * (width - left - right)) / (axes.length - 1));
    const ns = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    axes.forEach((axis, i) => {
      const line = document.createElementNS(ns, "line");
      line.setAttribute("x1", x(i)); line.setAttribute("x2", x(i));
      line.setAttribute("y1", top); line.setAttribute("y2", height - bottom);
      line.setAttribute("stroke", "#57606a");
      svg.append(line);
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", x(i)); label.setAttribute("y", 18); label.setAttribute("text-anchor", "middle");
      label.textContent = axis;
      svg.append(label);
    });
    data.runs.forEach((run, r) => {
      const points = axes.map((axis, i) => {
        const v = value(run, axis);
        return v === undefined || v === null ? null : `${x(i)},${scales[i](v)}`;
      });
      if (points.includes(null)) return;
      const path = document.createElementNS(ns, "polyline");
      path.setAttribute("points", points.join(" "));
      path.setAttribute("fill", "none");
      path.setAttribute("stroke", colours[r % colours.length]);
      path.setAttribute("stroke-width", "2");
      path.setAttribute("class", "run-line");
      const title = document.createElementNS(ns, "title");
      title.textContent = run.name;
      path.append(title);
      svg.append(path);
    });
  }

  Promise.all(Array.from(document.querySelectorAll(".chart[data-key]")).map(overlay)).then(() => {
    document.body.dataset.charts = "drawn";
  });
  const choice = document.getElementById("target");
  if (choice) {
    choice.addEventListener("change", () => parallel(choice.value));
    parallel(choice.value);
  }
})();
