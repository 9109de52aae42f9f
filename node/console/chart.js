// Small SVG charts drawn from ledger figures (no library): a vertical bar chart with a labelled
// value axis, and a line chart over time. Values are numbers used for scale only; every bar and
// every point carries its exact label.

const NS = 'http://www.w3.org/2000/svg';

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A "nice" step (1, 2 or 5 × 10^k) so that about `ticks` steps cover `max`. */
function niceStep(max, ticks) {
  const raw = max / ticks;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const f = raw / pow;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * pow;
}

/**
 * Draws the value axis of a chart of inner size w × h inside margins m (grid lines and tick
 * labels at nice steps up to at least `max`) and returns the value → y mapping.
 */
function valueAxis(svg, m, w, h, max, axisLabel) {
  const step = niceStep(max, 4);
  const top = Math.ceil(max / step) * step;
  const y = (v) => m.top + h - (v / top) * h;
  for (let v = 0; v <= top + step / 2; v += step) {
    svg.append(el('line', { x1: m.left, x2: m.left + w, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(el('text', { x: m.left - 8, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, axisLabel(v)));
  }
  return y;
}

/**
 * bars: [{ label, value, valueLabel, note }]; opts: { title, axisLabel(value) }.
 * Returns an <svg> with role="img", a <title> and one <g class="bar"> per bar.
 */
export function barChart(bars, opts) {
  const width = 640, height = 280;
  const m = { top: 24, right: 16, bottom: 48, left: 96 };
  const w = width - m.left - m.right, h = height - m.top - m.bottom;
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'chart', 'aria-label': opts.title });
  svg.append(el('title', {}, opts.title));
  const y = valueAxis(svg, m, w, h, Math.max(1, ...bars.map((b) => b.value)), opts.axisLabel);
  const slot = w / Math.max(1, bars.length);
  const bw = Math.min(64, slot * 0.6);
  bars.forEach((b, i) => {
    const x = m.left + slot * i + (slot - bw) / 2;
    const g = el('g', { class: 'bar', 'data-label': b.label });
    const rect = el('rect', { x, y: y(b.value), width: bw, height: Math.max(0, m.top + h - y(b.value)), class: b.note ? 'bar-rect noted' : 'bar-rect' });
    rect.append(el('title', {}, `${b.label}: ${b.valueLabel}${b.note ? ` (${b.note})` : ''}`));
    g.append(rect);
    g.append(el('text', { x: x + bw / 2, y: m.top + h + 18, 'text-anchor': 'middle', class: 'xlabel' }, b.label));
    g.append(el('text', { x: x + bw / 2, y: y(b.value) - 6, 'text-anchor': 'middle', class: 'vlabel' }, b.short || ''));
    svg.append(g);
  });
  svg.append(el('line', { x1: m.left, x2: m.left + w, y1: m.top + h, y2: m.top + h, class: 'axis' }));
  return svg;
}

/** Labels on the time axis: about this many, evenly spaced. */
const X_LABELS_MAX = 6;

/**
 * A line chart over time. points: [{ key, label, value, valueLabel, attrs }] in order (key: a
 * stable id such as "2025-03", label: what the axis shows, attrs: more attributes of the
 * point's <g>); opts: { title, desc, axisLabel(value), max }.
 * Returns an <svg> with role="img", a <title> and a <desc>, the line, and one <g class="point">
 * per point (data-key, data-value) holding a marker whose <title> is the exact value.
 */
export function lineChart(points, opts) {
  const width = 640, height = 280;
  const m = { top: 24, right: 20, bottom: 48, left: 64 };
  const w = width - m.left - m.right, h = height - m.top - m.bottom;
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'chart line-chart', 'aria-label': opts.title });
  svg.append(el('title', {}, opts.title));
  if (opts.desc) svg.append(el('desc', {}, opts.desc));
  const y = valueAxis(svg, m, w, h, Math.max(opts.max || 0, 1e-9, ...points.map((p) => p.value)), opts.axisLabel);
  const x = (i) => m.left + (points.length > 1 ? (w * i) / (points.length - 1) : w / 2);
  if (points.length > 1) {
    svg.append(el('polyline', { class: 'series-line', fill: 'none', points: points.map((p, i) => `${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ') }));
  }
  const every = Math.max(1, Math.ceil(points.length / X_LABELS_MAX));
  points.forEach((p, i) => {
    const g = el('g', { class: 'point', 'data-key': p.key, 'data-value': p.value, ...(p.attrs || {}) });
    const dot = el('circle', { cx: x(i), cy: y(p.value), r: points.length > 48 ? 2 : 3.5, class: 'series-dot' });
    dot.append(el('title', {}, `${p.label}: ${p.valueLabel}`));
    g.append(dot);
    const last = points.length - 1;
    // The last point is always labelled, ending at its point so it stays inside the chart.
    if ((i % every === 0 && last - i >= every) || i === last) {
      const anchor = i === last && last > 0 ? 'end' : 'middle';
      g.append(el('text', { x: x(i), y: m.top + h + 18, 'text-anchor': anchor, class: 'xlabel' }, p.label));
    }
    svg.append(g);
  });
  svg.append(el('line', { x1: m.left, x2: m.left + w, y1: m.top + h, y2: m.top + h, class: 'axis' }));
  return svg;
}

/** A horizontal gauge of used / max (mempool occupancy). */
export function gauge(used, max, label) {
  const width = 320, height = 22;
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'gauge', 'aria-label': label });
  svg.append(el('title', {}, label));
  const f = max > 0 ? Math.min(1, used / max) : 0;
  svg.append(el('rect', { x: 0, y: 0, width, height, rx: 4, class: 'gauge-bg' }));
  svg.append(el('rect', { x: 0, y: 0, width: Math.max(f > 0 ? 2 : 0, width * f), height, rx: 4, class: f > 0.8 ? 'gauge-fg hot' : 'gauge-fg' }));
  return svg;
}
