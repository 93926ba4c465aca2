// A small live SVG line chart with two series on independent y axes.

import { h } from "./dom.js";

const W = 640;
const H = 180;
const PAD = { left: 40, right: 40, top: 12, bottom: 22 };
const MIN_SPAN_MS = 60_000;

function niceMax(value) {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * magnitude) return step * magnitude;
  return 10 * magnitude;
}

/**
 * new LiveChart({windowSeconds, series: [{key, label, color, axis: "left"|"right"}]})
 * chart.push(timeMs, {key: value|null}); chart.element is the <figure>.
 */
export class LiveChart {
  constructor({ windowSeconds = 300, series }) {
    this.windowMs = windowSeconds * 1000;
    this.series = series;
    this.points = [];
    this.svg = h("svg:svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": series.map((s) => s.label).join(" and ") });
    this.legend = h("figcaption", { class: "legend" });
    this.element = h("figure", { class: "chart-figure" }, this.svg, this.legend);
    this.render();
  }

  push(time, values) {
    this.points.push({ time, values });
    const cutoff = time - this.windowMs;
    while (this.points.length > 2 && this.points[0].time < cutoff) this.points.shift();
    this.render();
  }

  render() {
    const now = this.points.at(-1)?.time ?? Date.now();
    // Grow the visible span with the data (at least a minute) up to the whole window,
    // so a freshly opened dashboard is not one line squeezed against "now".
    const first = this.points[0]?.time ?? now;
    const span = Math.min(this.windowMs, Math.max(MIN_SPAN_MS, now - first));
    const start = now - span;
    const x = (t) => PAD.left + ((t - start) / span) * (W - PAD.left - PAD.right);
    const maxima = {};
    for (const axis of ["left", "right"]) {
      const values = this.series.filter((s) => s.axis === axis)
        .flatMap((s) => this.points.map((p) => p.values[s.key]).filter((v) => v !== null && v !== undefined));
      maxima[axis] = niceMax(Math.max(0, ...values));
    }
    const y = (axis, v) => H - PAD.bottom - (v / maxima[axis]) * (H - PAD.top - PAD.bottom);
    const children = [];
    for (let i = 0; i <= 4; i += 1) {
      const gy = PAD.top + (i * (H - PAD.top - PAD.bottom)) / 4;
      children.push(h("svg:line", { x1: PAD.left, x2: W - PAD.right, y1: gy, y2: gy, class: "grid" }));
    }
    for (const [axis, anchor, tx] of [["left", "end", PAD.left - 6], ["right", "start", W - PAD.right + 6]]) {
      if (!this.series.some((s) => s.axis === axis)) continue;
      children.push(h("svg:text", { x: tx, y: PAD.top + 4, "text-anchor": anchor, class: "tick" }, String(maxima[axis])));
      children.push(h("svg:text", { x: tx, y: H - PAD.bottom + 4, "text-anchor": anchor, class: "tick" }, "0"));
    }
    const label = span >= 120_000 ? `−${Math.round(span / 60000)} min` : `−${Math.round(span / 1000)} s`;
    children.push(h("svg:text", { x: PAD.left, y: H - 6, class: "tick" }, label));
    children.push(h("svg:text", { x: W - PAD.right, y: H - 6, "text-anchor": "end", class: "tick" }, "now"));
    for (const s of this.series) {
      const coords = this.points
        .filter((p) => p.time >= start)
        .filter((p) => p.values[s.key] !== null && p.values[s.key] !== undefined)
        .map((p) => `${x(p.time).toFixed(1)},${y(s.axis, p.values[s.key]).toFixed(1)}`);
      if (coords.length) children.push(h("svg:polyline", { points: coords.join(" "), fill: "none", stroke: s.color, "stroke-width": 2, "stroke-linejoin": "round", dataset: { series: s.key } }));
    }
    this.svg.replaceChildren(...children);
    this.legend.replaceChildren(...this.series.map((s) => {
      const latest = this.points.at(-1)?.values[s.key];
      return h("span", { class: "legend-item", dataset: { series: s.key } },
        h("i", { style: { background: s.color } }),
        `${s.label}: `,
        h("strong", {}, latest === null || latest === undefined ? "n/a" : (Math.round(latest * 10) / 10).toString()));
    }));
  }
}
