// posenc explorer: shared helpers. The page draws what the JSON API returns; it computes no
// encoding itself.

export const SVGNS = "http://www.w3.org/2000/svg";
export const TAU = 2 * Math.PI;

export function fig(panel, name) { return panel.querySelector(`[data-fig="${name}"]`); }
export function view(panel, name) { return panel.querySelector(`[data-view="${name}"]`); }
export function role(panel, name) { return panel.querySelector(`[data-role="${name}"]`); }
export function ctl(panel, name) { return panel.querySelector(`[name="${name}"]`); }

export function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return x.toExponential(2);
  return Number(x.toFixed(digits)).toString();
}
export function fmtInt(x) { return Math.round(x).toLocaleString("en-US"); }

/** GET /api/<path>?params, or POST with a body; throws Error(message) on a non-2xx answer. */
export async function api(path, params = {}, body) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) qs.set(k, String(v));
  const url = `/api/${path}${qs.toString() ? "?" + qs : ""}`;
  const resp = await fetch(url, body === undefined ? {} : { method: "POST", body, headers: { "content-type": "application/json" } });
  let data;
  try { data = await resp.json(); } catch (e) { throw new Error(`${resp.status} from ${path}: not JSON`); }
  if (!resp.ok) { const err = new Error(data.error || `HTTP ${resp.status}`); err.status = resp.status; throw err; }
  return data;
}

/**
 * Per-panel request runner: debounces, drops stale answers, reports errors in the status line.
 * `onError(key, error)` lets a panel clear what the failed request would have replaced.
 */
export function runner(panel, onError) {
  const seq = {};
  const timers = {};
  const status = role(panel, "status");
  return function run(key, fn, delay = 60) {
    clearTimeout(timers[key]);
    timers[key] = setTimeout(async () => {
      const my = (seq[key] = (seq[key] || 0) + 1);
      try {
        const t0 = performance.now();
        await fn(() => my === seq[key]);
        if (status && my === seq[key]) { status.classList.remove("error"); status.textContent = `${key}: ${Math.round(performance.now() - t0)} ms`; }
      } catch (e) {
        if (my !== seq[key]) return;
        if (status) { status.classList.add("error"); status.textContent = `${key}: ${e.message}`; }
        if (onError) onError(key, e);
      }
    }, delay);
  };
}

/** A new HTML element with text content and a class. */
export function elem(tag, content, cls) {
  const e = document.createElement(tag);
  if (content !== undefined && content !== null) e.textContent = String(content);
  if (cls) e.className = cls;
  return e;
}

/** A new SVG element with attributes, appended to `parent`. */
export function el(tag, attrs = {}, parent) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// ------------------------------------------------------------------ colours

function lerp(a, b, t) { return a + (b - a) * t; }
export function ramp(stops, t) {
  t = Math.min(1, Math.max(0, t));
  const x = t * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map(k => Math.round(lerp(stops[i][k], stops[i + 1][k], f)));
}
export const DIVERGING = [[49, 54, 149], [116, 173, 209], [245, 245, 245], [244, 109, 67], [165, 0, 38]];
export const SEQUENTIAL = [[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
export const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
// matplotlib's "twilight" (perceptually uniform, colour-blind friendly, cyclic), 33 samples.
export const TWILIGHT = [[226, 217, 226], [215, 215, 221], [196, 206, 212], [172, 194, 204], [149, 181, 199], [129, 166, 195],
  [114, 151, 193], [104, 135, 190], [98, 118, 186], [95, 100, 181], [94, 81, 173], [93, 61, 161], [89, 42, 143], [81, 27, 119],
  [69, 19, 92], [56, 17, 69], [47, 20, 54], [58, 17, 58], [74, 19, 66], [95, 23, 74], [116, 30, 79], [135, 39, 80], [152, 53, 80],
  [166, 69, 80], [178, 86, 82], [187, 105, 88], [194, 124, 99], [200, 144, 115], [204, 163, 137], [209, 182, 163], [216, 199, 190],
  [223, 212, 214], [226, 217, 226]];
export function diverging(v, max = 1) { return ramp(DIVERGING, 0.5 + 0.5 * v / max); }
export function sequential(t) { return ramp(SEQUENTIAL, t); }
export function viridis(t) { return ramp(VIRIDIS, t); }
/** An angle in radians on the cyclic map (any angle; wrapped to [0, 2π)). */
export function cyclic(angle) { return ramp(TWILIGHT, (((angle % TAU) + TAU) % TAU) / TAU); }
const GREY = [200, 202, 208];
/** The colour of rows the sampling cannot show (flat: no false stripes). */
export function greyed() { return GREY; }
export const rgbCss = c => `rgb(${c[0]},${c[1]},${c[2]})`;
export const NO_VALUE = null;
/** Colours for n series along viridis (dark = first). */
export function seriesColours(n) { return [...Array(n).keys()].map(i => rgbCss(viridis(n === 1 ? 0 : 0.85 * i / (n - 1)))); }

// ------------------------------------------------------------------ ticks and text

export function niceTicks(lo, hi, n = 5) {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / Math.max(1, n);
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= step0) || step0;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}
export function logTicks(lo, hi, maxTicks = 7) {
  const decades = Math.log10(hi) - Math.log10(lo);
  // Few decades: 1, 2, 5 in each; many: every `step`-th power of ten.
  const mults = decades * 3 <= maxTicks ? [1, 2, 5] : [1];
  const step = Math.max(1, Math.ceil(decades / maxTicks));
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e += step) {
    for (const m of mults) { const v = m * Math.pow(10, e); if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v); }
  }
  return out;
}
export function tickLabel(v) {
  const a = Math.abs(v);
  if (a >= 1e5 || (a > 0 && a < 1e-2)) return v.toExponential(0).replace("e+", "e");
  if (a >= 1000) return (v / 1000).toFixed(a >= 1e4 ? 0 : 1).replace(/\.0$/, "") + "k";
  return Number(v.toPrecision(3)).toString();
}
let measureCtx = null;
/** Width in px of `text` at the page's 11 px SVG font. */
export function textWidth(text, px = 11) {
  if (!measureCtx) measureCtx = document.createElement("canvas").getContext("2d");
  measureCtx.font = `${px}px system-ui, sans-serif`;
  return measureCtx.measureText(String(text)).width;
}
/** Indices of labels to show so that none overlaps the previous one (centres at `pos`, widths `w`). */
export function thin(pos, widths, gap = 4) {
  const keep = [];
  let end = -Infinity;
  pos.forEach((p, i) => { if (p - widths[i] / 2 >= end + gap) { keep.push(i); end = p + widths[i] / 2; } });
  return keep;
}

// ------------------------------------------------------------------ heatmap views

const Y_AXIS_W = 46;

/**
 * A heatmap figure: y-axis strip, canvas, x-axis strip and colour bar, built inside `host`
 * (an element with `data-view="NAME"`; the canvas gets `data-fig="NAME"`). Returns
 * { canvas, draw(spec) }; draw returns a map { cellAt(px, py) }.
 *
 * spec: rows, cols, colour(r, c) → [r,g,b] | null (hatched: no value), grey(r) → bool (row
 * greyed out), overlay(ctx, g), x / y: { lo, hi, label, marks: [{at, label}] } (continuous) or
 * { labels: [...], label } (one per cell), bar: { kind: "ramp" | "cyclic" | "swatches", stops,
 * lo, hi, label, ticks, swatches: [[rgb, text]] }, greyNote, aria.
 */
export function heatView(host) {
  host.classList.add("heatview");
  host.innerHTML = "";
  const ysvg = el("svg", { class: "hv-y", width: Y_AXIS_W, "aria-hidden": "true" });
  const plotBox = elem("div", null, "hv-plot");
  const canvas = document.createElement("canvas");
  canvas.dataset.fig = host.dataset.view;
  canvas.tabIndex = 0;
  canvas.setAttribute("role", "img");
  const h = Number(host.dataset.height || 200);
  if (host.classList.contains("square")) { canvas.classList.add("square"); } else { canvas.style.height = `${h}px`; }
  plotBox.appendChild(canvas);
  const xsvg = el("svg", { class: "hv-x", height: 34, "aria-hidden": "true" });
  const bar = el("svg", { class: "hv-bar", height: 34, "aria-hidden": "true" });
  const readout = elem("div", "", "hv-readout");
  readout.setAttribute("aria-live", "polite");
  host.append(ysvg, plotBox, elem("span"), xsvg, elem("span"), bar, elem("span"), readout);
  let last = null;
  const draw = spec => {
    last = spec;
    // The y strip is as wide as its widest label (so long position labels never reach the axis
    // title); set before drawing, since it changes the canvas width.
    const yw = yAxisWidth(spec);
    if (host.dataset.yw !== String(yw)) { host.dataset.yw = String(yw); host.style.gridTemplateColumns = `${yw}px minmax(0, 1fr)`; ysvg.setAttribute("width", yw); }
    const map = heatmap(canvas, spec.rows, spec.cols, spec.grey ? (r, c) => { const v = spec.colour(r, c); return v && spec.grey(r) ? greyed(v) : v; } : spec.colour, spec.overlay);
    if (spec.aria) canvas.setAttribute("aria-label", spec.aria);
    drawYAxis(ysvg, map, spec);
    drawXAxis(xsvg, map, spec);
    drawBar(bar, map.w, spec);
    map.readout = readout;
    return map;
  };
  return { canvas, draw, readout, redraw: () => last && draw(last) };
}

/** Tick labels of the y strip: categorical labels, or integer ticks of a continuous axis. */
function yTicks(spec, H) {
  const y = spec.y || {};
  if (y.labels) return y.labels.map(String);
  if (y.hi === undefined) return [];
  return niceTicks(y.lo, y.hi, Math.max(2, Math.floor(H / 28))).filter(t => Number.isInteger(t) && t >= y.lo && t <= y.hi).map(tickLabel);
}
function yAxisWidth(spec) {
  const labels = yTicks(spec, 400);
  const widest = labels.length ? Math.max(...labels.map(t => textWidth(t))) : 0;
  return Math.max(Y_AXIS_W, Math.ceil(widest) + 26);
}

function drawYAxis(svg, map, spec) {
  svg.innerHTML = "";
  const H = map.h;
  const W = Number(svg.getAttribute("width")) || Y_AXIS_W;
  svg.setAttribute("height", H);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const y = spec.y || {};
  const g = el("g", { class: "axis" }, svg);
  if (y.labels) {
    const centres = y.labels.map((_, r) => (r + 0.5) * map.sy);
    const keep = thin(centres, y.labels.map(() => 12), 1);
    for (const r of keep) {
      el("text", { x: W - 4, y: centres[r] + 3.5, "text-anchor": "end" }, g).textContent = String(y.labels[r]);
    }
  } else if (y.hi !== undefined) {
    // Row r covers [lo + r·step, lo + (r+1)·step); ticks at row centres.
    const n = spec.rows;
    const ticks = niceTicks(y.lo, y.hi, Math.max(2, Math.floor(H / 28))).filter(t => Number.isInteger(t) && t >= y.lo && t <= y.hi);
    // (the same ticks yAxisWidth measured, for this height)
    for (const t of ticks) {
      const py = ((t - y.lo) / Math.max(1, y.hi - y.lo + 1) * n + 0.5) * map.sy;
      el("line", { x1: W - 3, x2: W, y1: py, y2: py }, g);
      el("text", { x: W - 5, y: Math.min(H - 2, Math.max(9, py + 3.5)), "text-anchor": "end" }, g).textContent = tickLabel(t);
    }
  }
  if (y.label) {
    const cy = H / 2;
    el("text", { x: 9, y: cy, "text-anchor": "middle", transform: `rotate(-90 9 ${cy})`, class: "axis-label" }, g).textContent = y.label;
  }
}

function drawXAxis(svg, map, spec) {
  svg.innerHTML = "";
  const W = map.w;
  svg.setAttribute("viewBox", `0 0 ${W} 34`);
  const x = spec.x || {};
  const g = el("g", { class: "axis" }, svg);
  if (x.labels) {
    const centres = x.labels.map((_, c) => (c + 0.5) * map.sx);
    const widths = x.labels.map(t => textWidth(t));
    for (const c of thin(centres, widths)) {
      el("text", { x: Math.min(W - widths[c] / 2, Math.max(widths[c] / 2, centres[c])), y: 12, "text-anchor": "middle" }, g).textContent = String(x.labels[c]);
    }
  } else if (x.hi !== undefined) {
    // `cells`: one column per integer lo..hi-1, ticks at column centres (matrix indices);
    // otherwise a continuous range sampled by the columns.
    const X = x.cells ? v => (v - x.lo + 0.5) / Math.max(1e-9, x.hi - x.lo) * W : v => (v - x.lo) / Math.max(1e-9, x.hi - x.lo) * W;
    const ticks = niceTicks(x.lo, x.cells ? x.hi - 1 : x.hi, Math.max(2, Math.floor(W / 80)));
    const labels = ticks.map(tickLabel);
    const widths = labels.map(t => textWidth(t));
    const centres = ticks.map(t => Math.min(W - widths[0] / 2 - 1, Math.max(widths[0] / 2, X(t))));
    for (const i of thin(centres, widths)) {
      el("line", { x1: X(ticks[i]), x2: X(ticks[i]), y1: 0, y2: 3 }, g);
      el("text", { x: centres[i], y: 13, "text-anchor": "middle" }, g).textContent = labels[i];
    }
  }
  // Marks (▲ label) and the axis label share the second line; marks first, the label right-aligned
  // where it fits, else dropped to keep them apart.
  const used = [];
  for (const mk of x.marks || []) {
    const px = (mk.at - x.lo) / Math.max(1e-9, x.hi - x.lo) * W;
    const t = `▲ ${mk.label}`;
    const w = textWidth(t);
    const prevEnd = used.length ? used[used.length - 1][1] + 6 : 0;
    const start = Math.max(prevEnd, Math.min(W - w, px - 4));
    el("text", { x: start, y: 28, fill: mk.colour || "#d6336c", class: "mark" }, g).textContent = t;
    used.push([start, start + w]);
  }
  let height = 34;
  if (x.label) {
    const w = textWidth(x.label);
    const free = used.every(([a, b]) => b + 6 < W - w);
    const y = free ? 28 : 41;
    if (!free) height = 46;
    el("text", { x: W, y, "text-anchor": "end", class: "axis-label" }, g).textContent = x.label;
  }
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${W} ${height}`);
}

function drawBar(svg, W, spec) {
  svg.innerHTML = "";
  const b = spec.bar;
  if (!b) { svg.setAttribute("height", 0); return; }
  svg.setAttribute("height", 34);
  svg.setAttribute("viewBox", `0 0 ${W} 34`);
  const g = el("g", { class: "axis" }, svg);
  if (b.kind === "swatches") {
    let x = 0;
    for (const [rgb, text] of b.swatches) {
      el("rect", { x, y: 3, width: 14, height: 10, fill: rgbCss(rgb), stroke: "#999" }, g);
      el("text", { x: x + 18, y: 12 }, g).textContent = text;
      x += 18 + textWidth(text) + 16;
    }
    if (spec.greyNote) el("text", { x, y: 12, class: "grey-note" }, g).textContent = spec.greyNote;
    return;
  }
  const label = b.label || "";
  const labelW = textWidth(label) + 10;
  const barW = Math.max(80, Math.min(260, W - labelW - 4));
  const id = `cb${Math.random().toString(36).slice(2)}`;
  const defs = el("defs", {}, svg);
  const lg = el("linearGradient", { id, x1: 0, x2: 1, y1: 0, y2: 0 }, defs);
  const stops = b.kind === "cyclic" ? TWILIGHT : b.stops;
  stops.forEach((s, i) => el("stop", { offset: i / (stops.length - 1), "stop-color": rgbCss(s) }, lg));
  el("rect", { x: 0, y: 2, width: barW, height: 9, fill: `url(#${id})`, stroke: "#aaa", "stroke-width": 0.5 }, g);
  const ticks = b.kind === "cyclic" ? [[0, "0"], [0.5, "π"], [1, "2π"]]
    : (b.ticks || niceTicks(b.lo, b.hi, 4)).map(t => [(t - b.lo) / Math.max(1e-12, b.hi - b.lo), b.tickFormat ? b.tickFormat(t) : tickLabel(t)]);
  const centres = ticks.map(([f]) => f * barW);
  const widths = ticks.map(([, t]) => textWidth(t));
  for (const i of thin(centres, widths)) {
    const [f, t] = ticks[i];
    if (f < -1e-9 || f > 1 + 1e-9) continue;
    el("line", { x1: f * barW, x2: f * barW, y1: 11, y2: 14 }, g);
    el("text", { x: Math.min(barW - widths[i] / 2, Math.max(widths[i] / 2, f * barW)), y: 24, "text-anchor": "middle" }, g).textContent = t;
  }
  el("text", { x: barW + 8, y: 10, class: "axis-label" }, g).textContent = label;
  if (spec.greyNote) {
    const gx = barW + 8;
    el("rect", { x: gx, y: 16, width: 10, height: 9, fill: rgbCss(GREY) }, g);
    el("text", { x: gx + 14, y: 24, class: "grey-note" }, g).textContent = spec.greyNote;
  }
}

/**
 * Draws an nRows × nCols grid on `canvas`, one cell per value, scaled to the canvas size.
 * colour(r, c) returns [r, g, b] or null (drawn hatched: "no value").
 * Returns a mapper from canvas CSS pixels to (row, col).
 */
export function heatmap(canvas, nRows, nCols, colour, overlay) {
  const off = document.createElement("canvas");
  off.width = Math.max(1, nCols); off.height = Math.max(1, nRows);
  const octx = off.getContext("2d");
  const img = octx.createImageData(off.width, off.height);
  let hatched = false;
  for (let r = 0; r < nRows; r++) {
    for (let c = 0; c < nCols; c++) {
      const rgb = colour(r, c);
      const i = (r * nCols + c) * 4;
      if (rgb === NO_VALUE) { img.data[i + 3] = 0; hatched = true; continue; }
      img.data[i] = rgb[0]; img.data[i + 1] = rgb[1]; img.data[i + 2] = rgb[2]; img.data[i + 3] = 255;
    }
  }
  octx.putImageData(img, 0, 0);
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(10, canvas.clientWidth), h = Math.max(10, canvas.clientHeight);
  canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  if (hatched) {
    ctx.save(); ctx.strokeStyle = "#c9ccd3"; ctx.lineWidth = 1;
    for (let x = -h; x < w; x += 7) { ctx.beginPath(); ctx.moveTo(x, h); ctx.lineTo(x + h, 0); ctx.stroke(); }
    ctx.restore();
  }
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, w, h);
  const sx = w / nCols, sy = h / nRows;
  if (overlay) overlay(ctx, { w, h, sx, sy, x: c => (c + 0.5) * sx, y: r => (r + 0.5) * sy });
  return { w, h, sx, sy, rows: nRows, cols: nCols, cellAt: (px, py) => ({ col: Math.min(nCols - 1, Math.max(0, Math.floor(px / sx))), row: Math.min(nRows - 1, Math.max(0, Math.floor(py / sy))) }) };
}

export function vline(ctx, x, h, colour = "#000", dash = []) {
  ctx.save(); ctx.strokeStyle = colour; ctx.lineWidth = 1.5; ctx.setLineDash(dash);
  ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke(); ctx.restore();
}
export function hline(ctx, y, w, colour = "#000", dash = []) {
  ctx.save(); ctx.strokeStyle = colour; ctx.lineWidth = 1.5; ctx.setLineDash(dash);
  ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(w, y); ctx.stroke(); ctx.restore();
}

/**
 * Calls onPick({row, col}) on click, drag and keyboard over a heatmap canvas: arrows move a
 * cursor cell (shift: 10 cells), Enter or Space picks it; `describe(cell)` gives the hover and
 * focus text (shown in the view's readout, which screen readers announce).
 */
export function pickable(canvas, getMap, onPick, describe) {
  let down = false;
  let cursor = { row: 0, col: 0 };
  const show = cell => {
    const map = getMap(); if (!map || !describe) return;
    const t = describe(cell) || "";
    canvas.title = t;
    if (map.readout) map.readout.textContent = t;
  };
  const at = ev => { const map = getMap(); if (!map) return null; const rect = canvas.getBoundingClientRect(); return map.cellAt(ev.clientX - rect.left, ev.clientY - rect.top); };
  canvas.addEventListener("pointermove", ev => { const c = at(ev); if (!c) return; show(c); if (down && onPick) onPick(c); });
  canvas.addEventListener("pointerdown", ev => { const c = at(ev); if (!c) return; down = true; cursor = c; if (onPick) onPick(c); });
  window.addEventListener("pointerup", () => { down = false; });
  canvas.addEventListener("keydown", ev => {
    const map = getMap(); if (!map) return;
    const step = ev.shiftKey ? 10 : 1;
    const moves = { ArrowLeft: [0, -step], ArrowRight: [0, step], ArrowUp: [-step, 0], ArrowDown: [step, 0] };
    if (moves[ev.key]) {
      ev.preventDefault();
      const [dr, dc] = moves[ev.key];
      cursor = { row: Math.min(map.rows - 1, Math.max(0, cursor.row + dr)), col: Math.min(map.cols - 1, Math.max(0, cursor.col + dc)) };
      show(cursor);
      if (onPick) onPick(cursor);
    } else if ((ev.key === "Enter" || ev.key === " ") && onPick) { ev.preventDefault(); onPick(cursor); }
  });
  canvas.addEventListener("focus", () => show(cursor));
}

// ------------------------------------------------------------------ SVG plots

/**
 * Line/bar/step/dot plot. opts: series [{x, y, colour, width, opacity, label, kind: line|step|bars|dots|band,
 * y2 (band top)}], xlabel, ylabel, xmin/xmax/ymin/ymax, xlog, ylog, vlines/hlines [{at, colour, label, dash}],
 * xticks (explicit x tick positions), xtickFormat, onPick(x) for clicks, aria (text for screen
 * readers), legendExtra (element appended after the legend items). Legends sit above the plot
 * area and never cover data. Redraws `svg` from scratch.
 */
export function plot(svg, opts) {
  svg.innerHTML = "";
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", opts.aria || `${opts.ylabel || "value"} against ${opts.xlabel || "x"}`);
  const W = Math.max(120, svg.clientWidth || svg.parentNode.clientWidth || 400);
  const H0 = Number(svg.dataset.h || svg.getAttribute("height")) || 200;
  svg.dataset.h = H0;
  // The legend: rows of items above the plot area.
  const labelled = opts.series.filter(s => s.label);
  const legendRows = [];
  let row = [], rowW = 0;
  for (const s of labelled) {
    const w = 20 + textWidth(s.label) + 14;
    if (row.length && rowW + w > W - 10) { legendRows.push(row); row = []; rowW = 0; }
    row.push([s, rowW]); rowW += w;
  }
  if (row.length) legendRows.push(row);
  const legendH = legendRows.length * 15;
  const vlabels = (opts.vlines || []).filter(l => l.label);
  const m = { l: 52, r: 12, t: 8 + legendH + (vlabels.length ? 14 : 0), b: 34 };
  const H = H0 + legendH + (vlabels.length ? 14 : 0);
  svg.setAttribute("height", H);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const finite = (k) => opts.series.flatMap(s => (k === "y" && s.y2 ? s.y.concat(s.y2) : s[k])).filter(v => v !== null && Number.isFinite(v) && (k === "x" ? !opts.xlog || v > 0 : !opts.ylog || v > 0));
  const xs = finite("x"), ys = finite("y");
  let xmin = opts.xmin ?? Math.min(...xs), xmax = opts.xmax ?? Math.max(...xs);
  let ymin = opts.ymin ?? Math.min(...ys), ymax = opts.ymax ?? Math.max(...ys);
  for (const l of opts.hlines || []) if (opts.ymin === undefined || opts.ymax === undefined) { ymin = Math.min(ymin, l.at); ymax = Math.max(ymax, l.at); }
  if (!(xmax > xmin)) { xmax = xmin + 1; }
  if (!(ymax > ymin)) { ymax = ymin + 1; ymin -= 1; }
  // A little headroom so lines at the extremes do not run along the frame.
  if (!opts.ylog) {
    const pad = 0.04 * (ymax - ymin);
    if (opts.ymax === undefined) ymax += pad;
    if (opts.ymin === undefined && ymin !== 0) ymin -= pad;
  }
  const yt = opts.ylog ? logTicks(ymin, ymax, Math.max(2, Math.floor((H - m.t - m.b) / 22))) : niceTicks(ymin, ymax, Math.max(2, Math.min(5, Math.floor((H - m.t - m.b) / 28))));
  // The left margin fits the widest y tick label next to the rotated y title.
  m.l = Math.max(m.l, Math.ceil(Math.max(0, ...yt.map(t => textWidth(tickLabel(t))))) + 26);
  const tx = opts.xlog ? v => Math.log10(v) : v => v;
  const ty = opts.ylog ? v => Math.log10(v) : v => v;
  const X = v => m.l + (tx(v) - tx(xmin)) / (tx(xmax) - tx(xmin)) * (W - m.l - m.r);
  const Y = v => H - m.b - (ty(v) - ty(ymin)) / (ty(ymax) - ty(ymin)) * (H - m.t - m.b);
  const grid = el("g", { class: "grid" }, svg);
  const axis = el("g", { class: "axis" }, svg);
  const xt = opts.xticks ? opts.xticks.filter(t => t >= xmin && t <= xmax) : opts.xlog ? logTicks(xmin, xmax) : niceTicks(xmin, xmax, Math.max(2, Math.floor(W / 90)));
  const xfmt = opts.xtickFormat || tickLabel;
  const xlab = xt.map(xfmt), xw = xlab.map(t => textWidth(t));
  for (const t of xt) el("line", { x1: X(t), x2: X(t), y1: m.t, y2: H - m.b }, grid);
  // Tick labels stay inside the frame's width, clear of the y labels at the corner.
  const xAt = i => Math.min(W - xw[i] / 2, Math.max(m.l + xw[i] / 2 - 2, X(xt[i])));
  for (const i of thin(xt.map((_, i) => xAt(i)), xw)) el("text", { x: xAt(i), y: H - m.b + 13, "text-anchor": "middle" }, axis).textContent = xlab[i];
  const ylabs = yt.map(tickLabel);
  for (const i of thin(yt.map(Y).reverse(), ylabs.map(() => 12), 1).map(i => yt.length - 1 - i)) {
    const t = yt[i];
    el("line", { x1: m.l, x2: W - m.r, y1: Y(t), y2: Y(t) }, grid);
    el("text", { x: m.l - 4, y: Y(t) + 3.5, "text-anchor": "end" }, axis).textContent = ylabs[i];
  }
  el("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }, axis);
  el("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }, axis);
  if (opts.xlabel) el("text", { x: (m.l + W - m.r) / 2, y: H - 4, "text-anchor": "middle", class: "axis-label" }, axis).textContent = opts.xlabel;
  if (opts.ylabel) el("text", { x: 10, y: m.t + (H - m.t - m.b) / 2, "text-anchor": "middle", class: "axis-label", transform: `rotate(-90 10 ${m.t + (H - m.t - m.b) / 2})` }, axis).textContent = opts.ylabel;
  const clip = `clip${Math.random().toString(36).slice(2)}`;
  const cp = el("clipPath", { id: clip }, svg);
  el("rect", { x: m.l, y: m.t - 2, width: W - m.l - m.r, height: H - m.t - m.b + 4 }, cp);
  const body = el("g", { "clip-path": `url(#${clip})`, class: "plot-area" }, svg);
  for (const s of opts.series) {
    const colour = s.colour || "#1c5fb8";
    if (s.kind === "bars") {
      const n = s.x.length;
      const bw = Math.max(1, (W - m.l - m.r) / Math.max(1, n) * 0.8);
      s.x.forEach((x, i) => {
        const y = s.y[i]; if (y === null || !Number.isFinite(y) || (opts.ylog && y <= 0)) return;
        const base = opts.ylog ? ymin : Math.max(ymin, 0);
        const c = Array.isArray(s.colours) ? s.colours[i] : colour;
        const r = el("rect", { x: X(x) - bw / 2, y: Math.min(Y(y), Y(base)), width: bw, height: Math.abs(Y(base) - Y(y)), fill: c, opacity: s.opacity ?? 1 }, body);
        if (s.titles) el("title", {}, r).textContent = s.titles[i];
        if (s.onBar) s.onBar(r, i);
      });
      continue;
    }
    if (s.kind === "dots") {
      s.x.forEach((x, i) => {
        const y = s.y[i]; if (y === null || !Number.isFinite(y) || (opts.ylog && y <= 0)) return;
        const c = Array.isArray(s.colours) ? s.colours[i] : colour;
        el("circle", { cx: X(x), cy: Y(y), r: s.r || 2.5, fill: c, opacity: s.opacity ?? 1 }, body);
      });
      continue;
    }
    if (s.kind === "band") {
      const pts = s.x.map((x, i) => [x, s.y[i], s.y2[i]]).filter(([x, a, b]) => Number.isFinite(a) && Number.isFinite(b) && (!opts.xlog || x > 0));
      if (pts.length < 2) continue;
      const d = pts.map(([x, a], i) => `${i ? "L" : "M"}${X(x).toFixed(1)},${Y(a).toFixed(1)}`).join("") + pts.slice().reverse().map(([x, , b]) => `L${X(x).toFixed(1)},${Y(b).toFixed(1)}`).join("") + "Z";
      el("path", { d, fill: colour, opacity: s.opacity ?? 0.18, stroke: "none" }, body);
      continue;
    }
    let d = "";
    let pen = false;
    s.x.forEach((x, i) => {
      const y = s.y[i];
      if (y === null || !Number.isFinite(y) || (opts.ylog && y <= 0)) { pen = false; return; }
      if (s.kind === "step" && pen) d += `H${X(x).toFixed(1)}`;
      d += `${pen ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`;
      pen = true;
    });
    el("path", { d, fill: "none", stroke: colour, "stroke-width": s.width || 1.5, opacity: s.opacity ?? 1, "stroke-dasharray": s.dash || "" }, body);
  }
  // Vertical line labels: one band between the legend and the plot area, staggered apart.
  const placed = [];
  for (const l of opts.vlines || []) {
    if (!(l.at >= xmin && l.at <= xmax)) continue;
    el("line", { x1: X(l.at), x2: X(l.at), y1: m.t, y2: H - m.b, stroke: l.colour || "#d6336c", "stroke-width": 1.5, "stroke-dasharray": l.dash || "" }, svg);
    if (!l.label) continue;
    const w = textWidth(l.label);
    let x0 = Math.min(W - m.r - w, Math.max(m.l, X(l.at) - w / 2));
    for (const [a, b] of placed) if (x0 < b + 6 && x0 + w > a - 6) x0 = b + 6;
    if (x0 + w > W) continue;
    placed.push([x0, x0 + w]);
    el("text", { x: x0, y: m.t - 4, fill: l.colour || "#d6336c", class: "vlabel" }, svg).textContent = l.label;
  }
  for (const l of opts.hlines || []) {
    if (!(l.at >= ymin && l.at <= ymax)) continue;
    el("line", { x1: m.l, x2: W - m.r, y1: Y(l.at), y2: Y(l.at), stroke: l.colour || "#888", "stroke-width": 1.2, "stroke-dasharray": l.dash || "4 3" }, svg);
    if (l.label) el("text", { x: W - m.r - 3, y: Y(l.at) - 3, "text-anchor": "end", fill: l.colour || "#555", class: "hlabel" }, svg).textContent = l.label;
  }
  legendRows.forEach((r, ri) => r.forEach(([s, x0]) => {
    const g = el("g", { class: "legend" }, svg);
    const y = 4 + ri * 15;
    if (s.kind === "dots") el("circle", { cx: x0 + 14, cy: y + 5, r: 3.5, fill: s.colour || "#1c5fb8" }, g);
    else el("line", { x1: x0 + 6, x2: x0 + 22, y1: y + 5, y2: y + 5, stroke: s.colour || "#1c5fb8", "stroke-width": Math.max(2, Math.min(3, s.width || 2)), "stroke-dasharray": s.dash || "" }, g);
    el("text", { x: x0 + 26, y: y + 9 }, g).textContent = s.label;
  }));
  if (opts.onPick) {
    svg.style.cursor = "crosshair";
    svg.onclick = ev => {
      const rect = svg.getBoundingClientRect();
      const px = (ev.clientX - rect.left) * W / rect.width;
      const f = (px - m.l) / (W - m.l - m.r);
      const v = opts.xlog ? Math.pow(10, tx(xmin) + f * (tx(xmax) - tx(xmin))) : xmin + f * (xmax - xmin);
      opts.onPick(v);
    };
  }
  return { X, Y, m, W, H };
}

/** Index of the sampled column nearest to `pos` (columns sorted ascending). */
export function nearestColumn(positions, pos) {
  let lo = 0, hi = positions.length - 1;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (positions[mid] < pos) lo = mid + 1; else hi = mid; }
  if (lo > 0 && Math.abs(positions[lo - 1] - pos) < Math.abs(positions[lo] - pos)) lo -= 1;
  return lo;
}

/** Number of columns to request for a canvas: its width in CSS pixels (capped by the API). */
export function columnsFor(canvas) { return Math.min(2048, Math.max(32, Math.round(canvas.clientWidth || 600))); }

export function bindOutputs(panel, formatters) {
  for (const [name, f] of Object.entries(formatters)) {
    const input = ctl(panel, name);
    const out = panel.querySelector(`output[data-for="${name}"]`);
    const show = () => { if (out) out.textContent = f(Number(input.value)); };
    input.addEventListener("input", show); show();
  }
}

const redrawers = [];
export function onResize(fn) { redrawers.push(fn); }
let resizeTimer;
window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => redrawers.forEach(f => f()), 120); });

/** Makes an SVG element act as a button: focusable, Enter/Space activate, with a name. */
export function svgButton(g, label, onActivate) {
  g.setAttribute("tabindex", "0");
  g.setAttribute("role", "button");
  g.setAttribute("aria-label", label);
  g.style.cursor = "pointer";
  g.addEventListener("click", onActivate);
  g.addEventListener("keydown", ev => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); onActivate(); } });
}
