// Draws each <canvas data-chart="ID"> with Chart.js from the JSON in <script id="ID">, which
// the page embedded (Jinja's tojson). No inline script: the console's CSP allows none.
"use strict";
document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
  var spec = JSON.parse(document.getElementById(canvas.dataset.chart).textContent);
  new Chart(canvas, {
    type: spec.type,
    data: {
      labels: spec.labels,
      datasets: spec.datasets.map(function (d) {
        return {
          label: d.label, data: d.data, type: d.type || spec.type,
          backgroundColor: d.color, borderColor: d.color,
          pointRadius: spec.type === "line" ? 2 : 0, borderWidth: spec.type === "line" ? 2 : 0,
        };
      }),
    },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: { x: { ticks: { maxTicksLimit: 12 } }, y: { beginAtZero: true } },
      plugins: { legend: { position: "bottom" } },
    },
  });
});
