// posenc explorer. Draws what the JSON API returns; computes no encoding itself.
"use strict";

// ------------------------------------------------------------------ helpers

const SVGNS = "http://www.w3.org/2000/svg";
const TAU = 2 * Math.PI;

function $(panel, sel) { return panel.querySelector(sel); }
function fig(panel, name) { return panel.querySelector(`[data-fig="${name}"]`); }
function role(panel, name) { return panel.querySelector(`[data-role="${name}"]`); }
function ctl(panel, name) { return panel.querySelector(`[name="${name}"]`); }

function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return x.toExponential(2);
  return Number(x.toFixed(digits)).toString();
}
function fmtInt(x) { return Math.round(x).toLocaleString("en-US"); }

/** GET /api/<path>?params, or POST with a body; throws Error(message) on a non-2xx answer. */
async function api(path, params = {}, body) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) qs.set(k, String(v));
  const url = `/api/${path}${qs.toString() ? "?" + qs : ""}`;
  const resp = await fetch(url, body === undefined ? {} : { method: "POST", body, headers: { "content-type": "application/json" } });
  let data;
  try { data = await resp.json(); } catch (e) { throw new Error(`${resp.status} from ${path}: not JSON`); }
  if (!resp.ok) { const err = new Error(data.error || `HTTP ${resp.status}`); err.status = resp.status; throw err; }
  return data;
}

/** Per-panel request runner: debounces, drops stale answers, reports errors in the status line. */
function runner(panel) {
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
        if (status) { status.classList.add("error"); status.textContent = `${key}: ${e.message}`; }
      }
    }, delay);
  };
}

// ------------------------------------------------------------------ colours

function lerp(a, b, t) { return a + (b - a) * t; }
function ramp(stops, t) {
  t = Math.min(1, Math.max(0, t));
  const x = t * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map(k => Math.round(lerp(stops[i][k], stops[i + 1][k], f)));
}
const DIVERGING = [[49, 54, 149], [116, 173, 209], [245, 245, 245], [244, 109, 67], [165, 0, 38]];
const SEQUENTIAL = [[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function diverging(v, max = 1) { return ramp(DIVERGING, 0.5 + 0.5 * v / max); }
function sequential(t) { return ramp(SEQUENTIAL, t); }
function viridis(t) { return ramp(VIRIDIS, t); }
function hsl(h, s, l) {
  const a = s * Math.min(l, 1 - l);
  const f = n => { const k = (n + h / 30) % 12; return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1)))); };
  return [f(0), f(8), f(4)];
}
function cyclic(angle) { return hsl((angle / TAU) * 360, 0.7, 0.55); }
const NO_VALUE = null;

// ------------------------------------------------------------------ canvas heatmap

/**
 * Draws an nRows × nCols grid on `canvas`, one cell per value, scaled to the canvas size.
 * colour(r, c) returns [r, g, b] or null (drawn hatched: "no value").
 * Returns a mapper from canvas CSS pixels to (row, col).
 */
function heatmap(canvas, nRows, nCols, colour, overlay) {
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
  return { w, h, cellAt: (px, py) => ({ col: Math.min(nCols - 1, Math.max(0, Math.floor(px / sx))), row: Math.min(nRows - 1, Math.max(0, Math.floor(py / sy))) }) };
}

function vline(ctx, x, h, colour = "#000", dash = []) {
  ctx.save(); ctx.strokeStyle = colour; ctx.lineWidth = 1.5; ctx.setLineDash(dash);
  ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke(); ctx.restore();
}
function hline(ctx, y, w, colour = "#000", dash = []) {
  ctx.save(); ctx.strokeStyle = colour; ctx.lineWidth = 1.5; ctx.setLineDash(dash);
  ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(w, y); ctx.stroke(); ctx.restore();
}

/** Calls onPick({row, col}) on click and drag over a heatmap canvas; `describe(cell)` gives the hover text. */
function pickable(canvas, getMap, onPick, describe) {
  let down = false;
  if (describe) {
    canvas.addEventListener("pointermove", ev => {
      const map = getMap(); if (!map) return;
      const rect = canvas.getBoundingClientRect();
      canvas.title = describe(map.cellAt(ev.clientX - rect.left, ev.clientY - rect.top)) || "";
    });
  }
  const pick = ev => {
    const map = getMap(); if (!map) return;
    const rect = canvas.getBoundingClientRect();
    onPick(map.cellAt(ev.clientX - rect.left, ev.clientY - rect.top));
  };
  canvas.addEventListener("pointerdown", ev => { down = true; pick(ev); });
  canvas.addEventListener("pointermove", ev => { if (down) pick(ev); });
  window.addEventListener("pointerup", () => { down = false; });
}

// ------------------------------------------------------------------ SVG plots

function el(tag, attrs = {}, parent) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function niceTicks(lo, hi, n = 5) {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= step0) || step0;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}
function logTicks(lo, hi) {
  const out = [];
  const step = Math.max(1, Math.ceil((Math.log10(hi) - Math.log10(lo)) / 7));
  for (let e = Math.ceil(Math.log10(lo)); e <= Math.floor(Math.log10(hi)); e += step) out.push(Math.pow(10, e));
  return out;
}
function tickLabel(v) {
  const a = Math.abs(v);
  if (a >= 1e5 || (a > 0 && a < 1e-2)) return v.toExponential(0).replace("e+", "e");
  if (a >= 1000) return (v / 1000).toFixed(a >= 1e4 ? 0 : 1).replace(/\.0$/, "") + "k";
  return Number(v.toPrecision(3)).toString();
}

/**
 * Line/bar/step plot. opts: series [{x, y, colour, width, opacity, label, kind: line|step|bars|dots}],
 * xlabel, ylabel, xmin/xmax/ymin/ymax, xlog, ylog, vlines/hlines [{at, colour, label, dash}],
 * xticks (explicit x tick positions), onPick(x) for clicks. Returns nothing; redraws `svg` from scratch.
 */
function plot(svg, opts) {
  svg.innerHTML = "";
  const W = Math.max(120, svg.clientWidth || svg.parentNode.clientWidth || 400);
  const H = Number(svg.getAttribute("height")) || 200;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const m = { l: 50, r: 12, t: 10, b: 32 };
  const all = (k) => opts.series.flatMap(s => s[k]).filter(v => v !== null && Number.isFinite(v) && (k === "x" ? !opts.xlog || v > 0 : !opts.ylog || v > 0));
  const xs = all("x"), ys = all("y");
  let xmin = opts.xmin ?? Math.min(...xs), xmax = opts.xmax ?? Math.max(...xs);
  let ymin = opts.ymin ?? Math.min(...ys), ymax = opts.ymax ?? Math.max(...ys);
  for (const l of opts.hlines || []) if (opts.ymin === undefined || opts.ymax === undefined) { ymin = Math.min(ymin, l.at); ymax = Math.max(ymax, l.at); }
  if (!(xmax > xmin)) { xmax = xmin + 1; }
  if (!(ymax > ymin)) { ymax = ymin + 1; ymin -= 1; }
  const tx = opts.xlog ? v => Math.log10(v) : v => v;
  const ty = opts.ylog ? v => Math.log10(v) : v => v;
  const X = v => m.l + (tx(v) - tx(xmin)) / (tx(xmax) - tx(xmin)) * (W - m.l - m.r);
  const Y = v => H - m.b - (ty(v) - ty(ymin)) / (ty(ymax) - ty(ymin)) * (H - m.t - m.b);
  const grid = el("g", { class: "grid" }, svg);
  const axis = el("g", { class: "axis" }, svg);
  const xt = opts.xticks ? opts.xticks.filter(t => t >= xmin && t <= xmax) : opts.xlog ? logTicks(xmin, xmax) : niceTicks(xmin, xmax, Math.max(2, Math.floor(W / 90)));
  const yt = opts.ylog ? logTicks(ymin, ymax) : niceTicks(ymin, ymax, 4);
  for (const t of xt) { el("line", { x1: X(t), x2: X(t), y1: m.t, y2: H - m.b }, grid); el("text", { x: X(t), y: H - m.b + 13, "text-anchor": "middle" }, axis).textContent = tickLabel(t); }
  for (const t of yt) { el("line", { x1: m.l, x2: W - m.r, y1: Y(t), y2: Y(t) }, grid); el("text", { x: m.l - 4, y: Y(t) + 3.5, "text-anchor": "end" }, axis).textContent = tickLabel(t); }
  el("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }, axis);
  el("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }, axis);
  if (opts.xlabel) el("text", { x: (m.l + W - m.r) / 2, y: H - 3, "text-anchor": "middle" }, axis).textContent = opts.xlabel;
  if (opts.ylabel) el("text", { x: 10, y: m.t + (H - m.t - m.b) / 2, "text-anchor": "middle", transform: `rotate(-90 10 ${m.t + (H - m.t - m.b) / 2})` }, axis).textContent = opts.ylabel;
  const clip = `clip${Math.random().toString(36).slice(2)}`;
  const cp = el("clipPath", { id: clip }, svg);
  el("rect", { x: m.l, y: m.t - 2, width: W - m.l - m.r, height: H - m.t - m.b + 4 }, cp);
  const body = el("g", { "clip-path": `url(#${clip})` }, svg);
  for (const s of opts.series) {
    const colour = s.colour || "#1c5fb8";
    if (s.kind === "bars") {
      const n = s.x.length;
      const bw = Math.max(1, (W - m.l - m.r) / Math.max(1, n) * 0.8);
      s.x.forEach((x, i) => {
        const y = s.y[i]; if (y === null || !Number.isFinite(y)) return;
        const base = opts.ylog ? ymin : Math.max(ymin, 0);
        const c = Array.isArray(s.colours) ? s.colours[i] : colour;
        const r = el("rect", { x: X(x) - bw / 2, y: Math.min(Y(y), Y(base)), width: bw, height: Math.abs(Y(base) - Y(y)), fill: c, opacity: s.opacity ?? 1 }, body);
        if (s.titles) el("title", {}, r).textContent = s.titles[i];
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
  for (const l of opts.vlines || []) {
    if (!(l.at >= xmin && l.at <= xmax)) continue;
    el("line", { x1: X(l.at), x2: X(l.at), y1: m.t, y2: H - m.b, stroke: l.colour || "#d6336c", "stroke-width": 1.5, "stroke-dasharray": l.dash || "" }, svg);
    if (l.label) el("text", { x: X(l.at) + 3, y: m.t + 10, fill: l.colour || "#d6336c" }, svg).textContent = l.label;
  }
  for (const l of opts.hlines || []) {
    el("line", { x1: m.l, x2: W - m.r, y1: Y(l.at), y2: Y(l.at), stroke: l.colour || "#888", "stroke-width": 1.2, "stroke-dasharray": l.dash || "4 3" }, svg);
    if (l.label) el("text", { x: W - m.r - 3, y: Y(l.at) - 3, "text-anchor": "end", fill: l.colour || "#555" }, svg).textContent = l.label;
  }
  const labelled = opts.series.filter(s => s.label);
  if (labelled.length) {
    const wide = Math.max(...labelled.map(s => s.label.length)) * 6 + 30;
    el("rect", { x: m.l + 4, y: m.t, width: wide, height: labelled.length * 14 + 4, fill: "#fff", opacity: 0.85 }, svg);
  }
  labelled.forEach((s, i) => {
    const g = el("g", {}, svg);
    el("rect", { x: m.l + 8, y: m.t + 2 + i * 14, width: 12, height: 3, fill: s.colour || "#1c5fb8" }, g);
    el("text", { x: m.l + 24, y: m.t + 7 + i * 14 }, g).textContent = s.label;
  });
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
}

/** An x axis strip under a heatmap whose columns sit at `positions`. */
function xAxis(svg, lo, hi, label, marks = []) {
  svg.innerHTML = "";
  const W = Math.max(120, svg.clientWidth || 400);
  const H = Number(svg.getAttribute("height")) || 30;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const X = v => (v - lo) / Math.max(1e-9, hi - lo) * W;
  const g = el("g", { class: "axis" }, svg);
  for (const t of niceTicks(lo, hi, Math.max(2, Math.floor(W / 80)))) {
    el("line", { x1: X(t), x2: X(t), y1: 0, y2: 4 }, g);
    el("text", { x: Math.min(W - 12, Math.max(8, X(t))), y: 15, "text-anchor": "middle" }, g).textContent = tickLabel(t);
  }
  for (const mk of marks) {
    el("text", { x: Math.max(0, X(mk.at) - 3), y: 28, "text-anchor": "start", fill: mk.colour || "#d6336c" }, g).textContent = `▲ ${mk.label}`;
  }
  el("text", { x: W, y: 28, "text-anchor": "end" }, g).textContent = label;
}

/** Index of the sampled column nearest to `pos` (columns sorted ascending). */
function nearestColumn(positions, pos) {
  let lo = 0, hi = positions.length - 1;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (positions[mid] < pos) lo = mid + 1; else hi = mid; }
  if (lo > 0 && Math.abs(positions[lo - 1] - pos) < Math.abs(positions[lo] - pos)) lo -= 1;
  return lo;
}

/** Number of columns to request for a canvas: its width in device pixels (capped by the API). */
function columnsFor(canvas) { return Math.min(2048, Math.max(32, Math.round((canvas.clientWidth || 600) * Math.min(2, window.devicePixelRatio || 1)))); }

function bindOutputs(panel, formatters) {
  for (const [name, f] of Object.entries(formatters)) {
    const input = ctl(panel, name);
    const out = panel.querySelector(`output[data-for="${name}"]`);
    const show = () => { if (out) out.textContent = f(Number(input.value)); };
    input.addEventListener("input", show); show();
  }
}

const redrawers = [];
function onResize(fn) { redrawers.push(fn); }
let resizeTimer;
window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => redrawers.forEach(f => f()), 120); });

// ------------------------------------------------------------------ panel: why position

function whyPanel(panel) {
  const run = runner(panel);
  const matrix = (host, tokens, weights) => {
    host.innerHTML = "";
    host.style.gridTemplateColumns = `auto repeat(${tokens.length}, 1fr)`;
    const cell = (text, cls, bg) => { const d = document.createElement("div"); d.textContent = text; if (cls) d.className = cls; if (bg) d.style.background = bg; host.appendChild(d); };
    cell("", "lab");
    tokens.forEach(t => cell(t, "lab"));
    weights.forEach((row, i) => {
      cell(tokens[i], "lab");
      row.forEach(w => { const [r, g, b] = sequential(w); cell(w.toFixed(2), "", `rgb(${r},${g},${b})`); if (w > 0.6) host.lastChild.style.color = "#fff"; });
    });
  };
  const load = () => run("why", async fresh => {
    const d = await api("why", { scheme: ctl(panel, "scheme").value, a: ctl(panel, "a").value, b: ctl(panel, "b").value });
    if (!fresh()) return;
    panel._data = d;
    draw();
  });
  const draw = () => {
    const d = panel._data; if (!d) return;
    matrix(fig(panel, "wa"), d.a.tokens, d.a.weights);
    matrix(fig(panel, "wb"), d.b.tokens, d.b.weights);
    const v = role(panel, "verdict");
    if (!d.same_words) { v.textContent = "The sentences do not use the same words, so there is no permutation to compare."; v.className = "verdict"; }
    else if (d.is_permutation) { v.textContent = `scheme = ${d.scheme}: the outputs of B are exactly A's outputs, permuted (largest difference ${fmt(d.max_abs_diff)}). The head cannot tell the sentences apart.`; v.className = "verdict same"; }
    else { v.textContent = `scheme = ${d.scheme}: the same word gets a different output in A and B (largest difference ${fmt(d.max_abs_diff)}). Order now matters.`; v.className = "verdict"; }
    // Output dimension 0..7 for each matched word: A solid, B dashed.
    const series = [];
    const colours = ["#1c5fb8", "#d6336c", "#2b8a3e", "#e67700", "#7048e8", "#0b7285", "#862e9c", "#5c940d"];
    (d.matches.length ? d.matches : d.a.tokens.map((_, i) => ({ a: i, b: null }))).slice(0, 8).forEach((mt, k) => {
      const x = [...Array(d.dim).keys()];
      series.push({ x, y: d.a.outputs[mt.a], colour: colours[k], label: `${d.a.tokens[mt.a]} (A pos ${mt.a}${mt.b !== null ? `, B pos ${mt.b}` : ""})` });
      if (mt.b !== null) series.push({ x, y: d.b.outputs[mt.b], colour: colours[k], dash: "5 3", kind: "dots", r: 3.5 });
    });
    plot(fig(panel, "outs"), { series, xlabel: "output dimension (line = A, dots = same word in B)", ylabel: "value" });
  };
  panel.querySelectorAll("select, input").forEach(e => e.addEventListener("input", load));
  onResize(draw);
  load();
}

// ------------------------------------------------------------------ panel: sinusoidal

function sinusoidalPanel(panel) {
  const run = runner(panel);
  const lenOf = () => Math.round(Math.pow(2, Number(ctl(panel, "len").value)));
  const baseOf = () => Math.round(Math.pow(10, Number(ctl(panel, "base").value)));
  bindOutputs(panel, { len: () => fmtInt(lenOf()), dim: v => v, base: () => fmtInt(baseOf()) });
  const sel = { position: 10, dim: 0 };
  let map = null;
  const canvas = fig(panel, "heat");
  const loadTable = () => run("table", async fresh => {
    const d = await api("sinusoidal/table", { len: lenOf(), dim: ctl(panel, "dim").value, base: baseOf(), layout: ctl(panel, "layout").value, width: columnsFor(canvas) });
    if (!fresh()) return;
    panel._table = d;
    sel.position = Math.min(sel.position, d.len - 1);
    sel.dim = Math.min(sel.dim, d.dim - 1);
    drawTable(); loadRow();
  });
  const loadRow = () => run("row", async fresh => {
    const t = panel._table; if (!t) return;
    const d = await api("sinusoidal/row", { position: sel.position, dim: t.dim, base: t.base, layout: t.layout });
    if (!fresh()) return;
    panel._row = d; drawRow();
  }, 30);
  const drawTable = () => {
    const t = panel._table; if (!t) return;
    const n = t.positions.length;
    const col = nearestColumn(t.positions, sel.position);
    map = heatmap(canvas, t.dim, n, (r, c) => diverging(t.values[c * t.dim + r]), (ctx, g) => {
      vline(ctx, g.x(col), g.h, "#000");
      hline(ctx, g.y(sel.dim), g.w, "rgba(0,0,0,0.6)", [4, 3]);
    });
    xAxis(fig(panel, "heat-axis"), 0, t.len, `position (${n < t.len ? `${n} sampled columns of ${fmtInt(t.len)}` : "every position"}); dims 0 (top) … ${t.dim - 1}; selected position ${fmtInt(sel.position)}, dim ${sel.dim}`);
    loadCurve();
  };
  // The selected dimension and its partner (same frequency, other function) over a window of
  // about four wavelengths around the selected position (or the whole range when that is shorter).
  const pairOf = (t, d) => t.layout === "interleaved" ? Math.floor(d / 2) : d % (t.dim / 2);
  const loadCurve = () => run("curve", async fresh => {
    const t = panel._table; if (!t) return;
    const pair = pairOf(t, sel.dim);
    const span = Math.max(32, Math.ceil(4 * t.wavelengths[pair]));
    let c = t;
    if (span < t.len) {
      const start = Math.max(0, Math.min(t.len - span, Math.round(sel.position - span / 2)));
      c = await api("sinusoidal/table", { start, len: span, dim: t.dim, base: t.base, layout: t.layout, width: 400 });
      if (!fresh()) return;
    }
    panel._curve = c; drawCurve();
  }, 20);
  const drawCurve = () => {
    const t = panel._table, c = panel._curve; if (!t || !c) return;
    const pair = pairOf(t, sel.dim);
    const [ds, dc] = t.layout === "interleaved" ? [2 * pair, 2 * pair + 1] : [pair, pair + t.dim / 2];
    role(panel, "curve-cap").textContent = `dims ${ds} (sin) and ${dc} (cos): pair ${pair}, wavelength ${fmt(t.wavelengths[pair], 1)} positions`;
    plot(fig(panel, "curve"), {
      series: [
        { x: c.positions, y: c.positions.map((_, k) => c.values[k * c.dim + ds]), colour: "#d6336c", label: `dim ${ds} (sin)` },
        { x: c.positions, y: c.positions.map((_, k) => c.values[k * c.dim + dc]), colour: "#1c5fb8", label: `dim ${dc} (cos)` },
      ],
      ymin: -1.05, ymax: 1.05, xlabel: "position", vlines: [{ at: sel.position, colour: "#000" }],
      onPick: x => { sel.position = Math.max(0, Math.min(t.len - 1, Math.round(x))); drawTable(); loadRow(); },
    });
  };
  const drawRow = () => {
    const r = panel._row; if (!r) return;
    role(panel, "row-cap").textContent = `row of position ${fmtInt(r.position)}: sin values (red) and cos values (blue) by pair`;
    const sinX = [], sinY = [], cosX = [], cosY = [];
    r.values.forEach((v, d) => { if (r.function[d] === "sin") { sinX.push(r.pair[d]); sinY.push(v); } else { cosX.push(r.pair[d]); cosY.push(v); } });
    const selPair = r.layout === "interleaved" ? Math.floor(sel.dim / 2) : sel.dim % (r.dim / 2);
    plot(fig(panel, "row"), {
      series: [{ x: sinX, y: sinY, colour: "#d6336c", label: "sin" }, { x: cosX, y: cosY, colour: "#1c5fb8", label: "cos" }],
      ymin: -1.05, ymax: 1.05, xlabel: "pair i (frequency 1/base^(2i/d))", vlines: [{ at: selPair, colour: "#000", dash: "4 3" }],
      onPick: x => { const p = Math.max(0, Math.min(r.dim / 2 - 1, Math.round(x))); sel.dim = r.layout === "interleaved" ? 2 * p : p; drawTable(); drawRow(); },
    });
  };
  pickable(canvas, () => map, ({ row, col }) => {
    const t = panel._table; if (!t) return;
    sel.position = t.positions[col]; sel.dim = row; drawTable(); loadRow(); drawRow();
  }, ({ row, col }) => { const t = panel._table; return t && `position ${t.positions[col]}, dim ${row}: ${fmt(t.values[col * t.dim + row], 4)}`; });
  panel.querySelectorAll(".controls select, .controls input").forEach(e => e.addEventListener("input", loadTable));
  onResize(loadTable);
  loadTable();
}

// ------------------------------------------------------------------ panel: learned

function learnedPanel(panel) {
  const run = runner(panel);
  bindOutputs(panel, { max_positions: v => v, dim: v => v, resize_to: v => v });
  const sel = { position: 5 };
  const maps = {};
  const load = () => run("table", async fresh => {
    const maxp = Number(ctl(panel, "max_positions").value);
    const resizeTo = Number(ctl(panel, "resize_to").value);
    const len = Math.max(2 * maxp, resizeTo + Math.ceil(resizeTo / 4));
    const d = await api("learned/table", {
      max_positions: maxp, dim: ctl(panel, "dim").value, seed: ctl(panel, "seed").value || 0, std: 1,
      len, resize_to: resizeTo, width: columnsFor(fig(panel, "orig")),
    });
    if (!fresh()) return;
    panel._data = d; draw();
  });
  // Position `pos` of the original table sits at the same relative place in a table of `rows` rows.
  const scaledPos = (d, rows, pos) => Math.round(pos * (rows - 1) / Math.max(1, d.table.max_positions - 1));
  const drawOne = (name, t, len, dim, pos) => {
    const n = t.positions.length;
    const col = nearestColumn(t.positions, pos);
    const edge = nearestColumn(t.positions, t.max_positions);
    maps[name] = heatmap(fig(panel, name), dim, n, (r, c) => { const row = t.rows[c]; return row ? diverging(row[r], 2.5) : NO_VALUE; }, (ctx, g) => {
      vline(ctx, edge * g.sx, g.h, "#d6336c", [6, 4]);
      vline(ctx, g.x(col), g.h, "#000");
      ctx.fillStyle = "#555"; ctx.font = "12px system-ui";
      if (edge < n - 1) ctx.fillText("no row", edge * g.sx + 6, 16);
    });
    xAxis(fig(panel, `${name}-axis`), 0, len, `position; ${fmtInt(t.max_positions)} rows`, [{ at: t.max_positions, label: `length ${t.max_positions}` }]);
  };
  const draw = () => {
    const d = panel._data; if (!d) return;
    drawOne("orig", d.table, d.len, d.dim, sel.position);
    if (d.resized) drawOne("resized", d.resized, d.len, d.dim, scaledPos(d, d.resized.max_positions, sel.position));
    const rowAt = (t, pos) => { const c = nearestColumn(t.positions, pos); return t.rows[c]; };
    const x = [...Array(d.dim).keys()];
    const series = [];
    const r0 = rowAt(d.table, sel.position);
    if (r0) series.push({ x, y: r0, colour: "#1c5fb8", label: `original row ${sel.position}` });
    let cap = `position ${sel.position}: `;
    if (!r0) cap += "no row in the original table (past the training length). ";
    if (d.resized) {
      // The same relative place in the resized table.
      const scaled = scaledPos(d, d.resized.max_positions, sel.position);
      const r1 = rowAt(d.resized, scaled);
      if (r1) series.push({ x, y: r1, colour: "#d6336c", label: `resized row ${scaled}`, kind: "dots" });
      cap += `resized row ${scaled} sits at the same relative place.`;
    }
    role(panel, "row-cap").textContent = cap;
    if (series.length) plot(fig(panel, "row"), { series, xlabel: "dimension", ylabel: "value" });
    else fig(panel, "row").innerHTML = "";
  };
  for (const name of ["orig", "resized"]) {
    pickable(fig(panel, name), () => maps[name], ({ col }) => {
      const d = panel._data; if (!d) return;
      const t = name === "orig" ? d.table : d.resized;
      let pos = t.positions[col];
      if (name === "resized") pos = Math.round(pos * (d.table.max_positions - 1) / Math.max(1, d.resized.max_positions - 1));
      sel.position = pos; draw();
    });
  }
  panel.querySelectorAll(".controls input").forEach(e => e.addEventListener("input", load));
  onResize(load);
  load();
}

// ------------------------------------------------------------------ panel: RoPE

function ropePanel(panel) {
  const run = runner(panel);
  const baseOf = () => Math.round(Math.pow(10, Number(ctl(panel, "base").value)));
  const lenOf = () => Math.pow(2, Number(ctl(panel, "len").value));
  // Start on a middle pair: pair 0 turns once every 6 positions and hides everything else.
  const midPair = () => Math.floor(Number(ctl(panel, "head_dim").value) / 8);
  const sel = { pair: midPair() };
  bindOutputs(panel, { base: () => fmtInt(baseOf()), position: v => fmtInt(v), len: () => fmtInt(lenOf()), s: v => fmtInt(v) });
  const common = () => ({ head_dim: ctl(panel, "head_dim").value, base: baseOf() });
  let map = null;
  const canvas = fig(panel, "angles");
  const loadRotation = () => run("rotation", async fresh => {
    const d = await api("rope/rotation", { ...common(), position: ctl(panel, "position").value });
    if (!fresh()) return;
    panel._rot = d; drawHands(); drawAngles();
  }, 20);
  const loadAngles = () => run("angles", async fresh => {
    const len = lenOf();
    ctl(panel, "position").max = String(len - 1);
    const d = await api("rope/angles", { ...common(), len, width: columnsFor(canvas) });
    if (!fresh()) return;
    panel._angles = d; drawAngles();
  });
  const loadDecay = () => run("decay", async fresh => {
    const d = await api("rope/decay", { ...common(), max_distance: lenOf(), width: 600 });
    if (!fresh()) return;
    panel._decay = d; drawDecay();
  });
  const loadCheck = () => run("check", async fresh => {
    const d = await api("rope/relative_check", { ...common(), m: ctl(panel, "m").value || 0, n: ctl(panel, "n").value || 0, s: ctl(panel, "s").value });
    if (!fresh()) return;
    role(panel, "check").innerHTML = `q·k at (m, n) = (${d.m}, ${d.n}): <b>${d.score_mn.toFixed(6)}</b><br>` +
      `q·k at (m+s, n+s) = (${d.m + d.s}, ${d.n + d.s}): <b>${d.score_shifted.toFixed(6)}</b><br>` +
      `difference ${d.abs_diff.toExponential(2)} (float32 rounding): the score depends only on m − n = ${d.m - d.n}.`;
  }, 30);
  const drawHands = () => {
    const d = panel._rot; if (!d) return;
    const svg = fig(panel, "hands");
    svg.innerHTML = "";
    const W = Math.max(200, svg.clientWidth || 600);
    const n = d.cos.length;
    const perRow = Math.min(n, Math.max(8, Math.floor(W / 34)));
    const rows = Math.ceil(n / perRow);
    const cell = W / perRow, R = Math.min(14, cell / 2 - 3);
    const H = rows * (2 * R + 16) + 4;
    svg.setAttribute("height", H); svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    for (let i = 0; i < n; i++) {
      const cx = (i % perRow + 0.5) * cell, cy = Math.floor(i / perRow) * (2 * R + 16) + R + 3;
      const g = el("g", { style: "cursor:pointer" }, svg);
      el("circle", { cx, cy, r: R, fill: i === sel.pair ? "#fde2ea" : "#f3f4f6", stroke: i === sel.pair ? "#d6336c" : "#bbb" }, g);
      el("line", { x1: cx, y1: cy, x2: cx + R * d.cos[i], y2: cy - R * d.sin[i], stroke: "#1d2330", "stroke-width": 2 }, g);
      el("text", { x: cx, y: cy + R + 11, "text-anchor": "middle", "font-size": 9 }, g).textContent = i;
      el("title", {}, g).textContent = `pair ${i}: angle ${fmt(d.angle[i])} rad, wavelength ${fmt(d.frequencies.wavelength[i], 1)}`;
      g.addEventListener("click", () => { sel.pair = i; drawHands(); drawAngles(); drawDecay(); });
    }
  };
  const drawAngles = () => {
    const d = panel._angles; if (!d) return;
    const n = d.positions.length;
    const pos = Number(ctl(panel, "position").value);
    const col = nearestColumn(d.positions, pos);
    map = heatmap(canvas, d.pairs, n, (r, c) => cyclic(d.angles[r * n + c]), (ctx, g) => {
      vline(ctx, g.x(col), g.h, "#000");
      hline(ctx, g.y(sel.pair), g.w, "rgba(0,0,0,0.7)", [4, 3]);
    });
    xAxis(fig(panel, "angles-axis"), 0, d.len, `position (hue = angle); pairs 0 (top) … ${d.pairs - 1}; selected pair ${sel.pair}`);
  };
  const drawDecay = () => {
    const d = panel._decay; if (!d) return;
    const n = d.distances.length;
    const series = [];
    for (let i = 0; i < d.pairs; i++) {
      if (i === sel.pair) continue;
      series.push({ x: d.distances, y: d.distances.map((_, c) => d.per_pair[i * n + c]), colour: "#9aa5b8", width: 0.6, opacity: 0.35 });
    }
    series.push({ x: d.distances, y: d.distances.map((_, c) => d.per_pair[sel.pair * n + c]), colour: "#d6336c", width: 1.2, label: `pair ${sel.pair}` });
    series.push({ x: d.distances, y: d.mean, colour: "#1d2330", width: 2.5, label: "mean over pairs" });
    plot(fig(panel, "decay"), { series, ymin: -1.02, ymax: 1.02, xlabel: "distance Δ = m − n", hlines: [{ at: 0, colour: "#888" }] });
  };
  pickable(canvas, () => map, ({ row, col }) => {
    const d = panel._angles; if (!d) return;
    sel.pair = row; ctl(panel, "position").value = d.positions[col];
    panel.querySelector('output[data-for="position"]').textContent = fmtInt(d.positions[col]);
    loadRotation(); drawDecay();
  }, ({ row, col }) => { const d = panel._angles; return d && `pair ${row}, position ${d.positions[col]}: angle ${fmt(d.angles[row * d.positions.length + col], 3)} rad (mod 2π)`; });
  const loadAll = () => { loadAngles(); loadRotation(); loadDecay(); loadCheck(); };
  ctl(panel, "position").addEventListener("input", loadRotation);
  for (const n of ["head_dim", "base"]) ctl(panel, n).addEventListener("input", () => { sel.pair = midPair(); loadAll(); });
  ctl(panel, "len").addEventListener("input", () => { loadAngles(); loadDecay(); });
  for (const n of ["m", "n", "s"]) ctl(panel, n).addEventListener("input", loadCheck);
  onResize(() => { loadAngles(); drawHands(); drawDecay(); });
  loadAll();
}

// ------------------------------------------------------------------ panel: ALiBi

function alibiPanel(panel) {
  const run = runner(panel);
  bindOutputs(panel, { heads: v => v, len: v => v });
  const sel = { head: 0, query: null };
  const maps = {};
  const load = () => run("alibi", async fresh => {
    const heads = Number(ctl(panel, "heads").value);
    sel.head = Math.min(sel.head, heads - 1);
    const d = await api("alibi", { heads, len: ctl(panel, "len").value, head: sel.head, causal: ctl(panel, "causal").checked });
    if (!fresh()) return;
    panel._data = d; draw();
  });
  const draw = () => {
    const d = panel._data; if (!d) return;
    const L = d.len;
    role(panel, "head-label").textContent = `head ${d.head}: slope ${fmt(d.slopes[d.head], 5)}`;
    plot(fig(panel, "slopes"), {
      series: [{ x: d.slopes.map((_, h) => h), y: d.slopes, kind: "bars", colours: d.slopes.map((_, h) => h === d.head ? "#d6336c" : "#1c5fb8"), titles: d.slopes.map((s, h) => `head ${h}: slope ${s}`) }],
      ymin: 0, ymax: Math.max(...d.slopes) * 1.08, xmin: -0.6, xmax: d.slopes.length - 0.4, xlabel: "head", ylabel: "slope",
      onPick: x => { sel.head = Math.max(0, Math.min(d.heads - 1, Math.round(x))); load(); },
    });
    const minBias = Math.min(-1e-9, ...d.bias.filter(b => b !== null));
    const over = (ctx, g) => { if (sel.query !== null && sel.query < L) { ctx.strokeStyle = "#d6336c"; ctx.lineWidth = 2; ctx.strokeRect(0, sel.query * g.sy, g.w, g.sy); } };
    maps.bias = heatmap(fig(panel, "bias"), L, L, (r, c) => { const b = d.bias[r * L + c]; return b === null ? NO_VALUE : sequential(b / minBias); }, over);
    maps.mask = heatmap(fig(panel, "mask"), L, L, (r, c) => d.mask[r * L + c] ? [255, 255, 255] : [40, 40, 48], over);
    const wmax = Math.max(...d.weights_with_bias, ...d.weights_without_bias);
    maps.w0 = heatmap(fig(panel, "w0"), L, L, (r, c) => viridis(d.weights_without_bias[r * L + c] / wmax), over);
    maps.w1 = heatmap(fig(panel, "w1"), L, L, (r, c) => viridis(d.weights_with_bias[r * L + c] / wmax), over);
  };
  const alibiValue = { bias: (d, i) => d.bias[i], mask: (d, i) => (d.mask[i] ? "visible" : "masked"), w0: (d, i) => fmt(d.weights_without_bias[i], 4), w1: (d, i) => fmt(d.weights_with_bias[i], 4) };
  for (const name of ["bias", "mask", "w0", "w1"]) {
    pickable(fig(panel, name), () => maps[name], ({ row }) => { sel.query = row; draw(); },
      ({ row, col }) => { const d = panel._data; if (!d) return ""; const v = alibiValue[name](d, row * d.len + col); return `query ${row}, key ${col}: ${v === null ? "no bias (masked)" : typeof v === "number" ? fmt(v, 4) : v}`; });
  }
  panel.querySelectorAll(".controls input").forEach(e => e.addEventListener("input", load));
  onResize(draw);
  load();
}

// ------------------------------------------------------------------ panel: relative

function relativePanel(panel) {
  const run = runner(panel);
  bindOutputs(panel, { num_buckets: v => v, max_distance: v => v, clip: v => v });
  const sel = { rel: null };
  const maps = {};
  const loadT5 = () => run("t5", async fresh => {
    const d = await api("relative/t5", { bidirectional: ctl(panel, "bidirectional").checked, num_buckets: ctl(panel, "num_buckets").value, max_distance: ctl(panel, "max_distance").value, span: Math.min(4096, Math.max(64, 2 * Number(ctl(panel, "max_distance").value))), len: 64 });
    if (!fresh()) return;
    panel._t5 = d; drawT5();
  });
  const loadShaw = () => run("shaw", async fresh => {
    const d = await api("relative/shaw", { clip: ctl(panel, "clip").value, len: 32 });
    if (!fresh()) return;
    panel._shaw = d; drawShaw();
  });
  const drawT5 = () => {
    const d = panel._t5; if (!d) return;
    const [lo] = d.relative_positions;
    const bucketAtSel = sel.rel === null ? null : d.buckets[sel.rel - lo];
    plot(fig(panel, "buckets"), {
      series: [{ x: d.relative_positions, y: d.buckets, kind: "step", colour: "#1c5fb8", label: `${d.bidirectional ? "bidirectional" : "causal"}, ${d.num_buckets} buckets` }],
      xlabel: "relative position (key − query)", ylabel: "bucket",
      vlines: [{ at: d.max_distance, colour: "#888", dash: "4 3", label: "max_distance" }, { at: -d.max_distance, colour: "#888", dash: "4 3" }]
        .concat(sel.rel === null ? [] : [{ at: sel.rel, colour: "#d6336c", label: `Δ=${sel.rel} → bucket ${bucketAtSel}` }]),
      onPick: x => { sel.rel = Math.round(x); drawT5(); },
    });
    const L = d.len;
    maps.t5 = heatmap(fig(panel, "t5mat"), L, L, (r, c) => {
      const b = d.matrix[r * L + c];
      if (bucketAtSel !== null && b === bucketAtSel) return [214, 51, 108];
      return viridis(b / (d.num_buckets - 1));
    });
  };
  const drawShaw = () => {
    const d = panel._shaw; if (!d) return;
    const L = d.len;
    maps.shaw = heatmap(fig(panel, "shaw"), L, L, (r, c) => viridis(d.num_embeddings > 1 ? d.matrix[r * L + c] / (d.num_embeddings - 1) : 0));
  };
  pickable(fig(panel, "t5mat"), () => maps.t5, ({ row, col }) => { sel.rel = col - row; drawT5(); },
    ({ row, col }) => { const d = panel._t5; return d && `query ${row}, key ${col} (k − q = ${col - row}): bucket ${d.matrix[row * d.len + col]}`; });
  for (const n of ["bidirectional", "num_buckets", "max_distance"]) ctl(panel, n).addEventListener("input", loadT5);
  ctl(panel, "clip").addEventListener("input", loadShaw);
  onResize(() => { drawT5(); drawShaw(); });
  loadT5(); loadShaw();
}

// ------------------------------------------------------------------ panel: long context

const BAND_COLOURS = { unchanged: "#2b8a3e", interpolated: "#1c5fb8", blended: "#e67700", rescaled: "#862e9c" };

function longctxPanel(panel) {
  const run = runner(panel);
  bindOutputs(panel, { factor: v => `×${v}` });
  const maps = {};
  const sel = { pair: null };
  const showOnly = () => {
    const s = ctl(panel, "scaling").value;
    panel.querySelectorAll("label[data-only]").forEach(l => l.classList.toggle("on", l.dataset.only === s));
  };
  const params = () => {
    const s = ctl(panel, "scaling").value;
    const p = { scaling: s, factor: ctl(panel, "factor").value, original_max: ctl(panel, "original_max").value, head_dim: ctl(panel, "head_dim").value, base: ctl(panel, "base").value };
    if (s === "yarn") { p.beta_fast = ctl(panel, "beta_fast").value; p.beta_slow = ctl(panel, "beta_slow").value; }
    if (s === "llama3") { p.low_freq_factor = ctl(panel, "low_freq_factor").value; p.high_freq_factor = ctl(panel, "high_freq_factor").value; }
    p.target_len = Math.min(1048576, Number(p.original_max) * Number(p.factor));
    return p;
  };
  const load = () => run("longctx", async fresh => {
    showOnly();
    const d = await api("longctx", { ...params(), width: columnsFor(fig(panel, "before")) });
    if (!fresh()) return;
    panel._data = d; draw();
  });
  const loadBound = () => run("bound", async fresh => {
    const context = Number(ctl(panel, "context").value);
    const base = Number(ctl(panel, "base").value);
    const d = await api("longctx/base_bound", { head_dim: ctl(panel, "head_dim").value, context, base });
    if (!fresh()) return;
    const c = d.chosen;
    role(panel, "bound").innerHTML = `head dim ${d.head_dim}, context ${fmtInt(d.context)}: smallest base ≈ <b>${fmtInt(d.base_lower_bound)}</b> ` +
      `(grid ×${1 + d.grid_step}).<br>Chosen base ${fmtInt(base)}: ` +
      (c.holds ? `Σ cos(m·θ<sub>i</sub>) ≥ 0 for all m < ${fmtInt(d.context)} (minimum ${fmt(c.min_value)} at m = ${fmtInt(c.argmin)}).`
               : `the sum first turns negative at m = <b>${fmtInt(c.first_violation)}</b> (minimum ${fmt(c.min_value)} at m = ${fmtInt(c.argmin)}).`);
  }, 150);
  const draw = () => {
    const d = panel._data; if (!d) return;
    const pairs = d.before.inv_freq.map((_, i) => i);
    const cols = d.bands.map(b => BAND_COLOURS[b]);
    plot(fig(panel, "wl"), {
      series: [
        { x: pairs, y: d.before.wavelength, kind: "line", colour: "#9aa5b8", width: 1.5, label: "before", dash: "4 3" },
        { x: pairs, y: d.after.wavelength, kind: "dots", colours: cols, r: 3.2 },
        { x: [], y: [], colour: BAND_COLOURS.unchanged, label: "unchanged (extrapolated)" },
        { x: [], y: [], colour: BAND_COLOURS.blended, label: "blended" },
        { x: [], y: [], colour: BAND_COLOURS.interpolated, label: `interpolated (÷${fmt(d.factor)})` },
        { x: [], y: [], colour: BAND_COLOURS.rescaled, label: "rescaled (base change / per-pair factors)" },
      ],
      ylog: true, xlabel: `pair i (attention factor after scaling: ${fmt(d.after.attention_factor, 4)})`, ylabel: "wavelength (positions)",
      hlines: [{ at: d.train_len, colour: "#d6336c", label: `training length ${fmtInt(d.train_len)}` }, { at: d.target_len, colour: "#7048e8", label: `target ${fmtInt(d.target_len)}` }],
      vlines: sel.pair === null ? [] : [{ at: sel.pair, colour: "#000", label: `pair ${sel.pair}` }],
      onPick: x => { sel.pair = Math.max(0, Math.min(pairs.length - 1, Math.round(x))); draw(); },
    });
    const n = d.positions.length, P = pairs.length;
    const edge = nearestColumn(d.positions, d.train_len);
    const over = (ctx, g) => { vline(ctx, edge * g.sx, g.h, "#fff", [6, 4]); if (sel.pair !== null) hline(ctx, g.y(sel.pair), g.w, "#000", [4, 3]); };
    maps.before = heatmap(fig(panel, "before"), P, n, (r, c) => cyclic(d.angles_before[r * n + c]), over);
    maps.after = heatmap(fig(panel, "after"), P, n, (r, c) => cyclic(d.angles_after[r * n + c]), over);
    for (const k of ["before", "after"]) xAxis(fig(panel, `${k}-axis`), 0, d.target_len, "position", [{ at: d.train_len, label: "train" }]);
  };
  for (const k of ["before", "after"]) {
    pickable(fig(panel, k), () => maps[k], ({ row }) => { sel.pair = row; draw(); }, ({ row, col }) => {
      const d = panel._data; if (!d) return "";
      const a = (k === "before" ? d.angles_before : d.angles_after)[row * d.positions.length + col];
      return `pair ${row}, position ${d.positions[col]}: angle ${fmt(a, 3)} rad (mod 2π); band ${d.bands[row]}`;
    });
  }
  panel.querySelectorAll(".controls select, .controls input").forEach(e => {
    if (e.name === "context") return;
    e.addEventListener("input", () => { load(); if (e.name === "head_dim" || e.name === "base") loadBound(); });
  });
  ctl(panel, "context").addEventListener("input", loadBound);
  role(panel, "inspect").addEventListener("click", () => run("inspect", async () => {
    const box = role(panel, "report");
    try {
      const d = await api("config/inspect", {}, ctl(panel, "config").value);
      const rows = [["model_type", d.model_type], ["rope_type", d.rope_type], ["rope_theta", d.rope_theta], ["head_dim / rotary_dim", `${d.head_dim} / ${d.rotary_dim}`],
        ["max_position_embeddings", d.max_position_embeddings], ["original_max_position_embeddings", d.original_max_position_embeddings],
        ["factor", d.factor], ["attention_factor", fmt(d.attention_factor, 5)], ["pairs with wavelength > training length", d.pairs_with_wavelength_beyond_training]];
      // A sliding layer never sees distances of its window or more: its analysis uses min(window, context).
      if (d.sliding_window != null) rows.splice(rows.length - 1, 0, ["sliding window (effective training / target context)", `${fmtInt(d.sliding_window)} (${fmtInt(d.effective_training_context)} / ${fmtInt(d.effective_target_context)})`]);
      const trainLine = d.sliding_window != null ? { at: d.effective_training_context, label: "sliding window" }
        : { at: d.original_max_position_embeddings || d.max_position_embeddings, label: "training length" };
      box.innerHTML = "<table>" + rows.map(([k, v]) => `<tr><td>${k}</td><td><b>${v ?? "–"}</b></td></tr>`).join("") + "</table>" +
        (d.warnings.length ? d.warnings.map(w => `<div class="warn">⚠ ${w.replace(/</g, "&lt;")}</div>`).join("") : "<div>no warnings</div>") +
        `<svg data-fig="cfgwl" height="160"></svg>` +
        `<details open><summary>posenc inspect report (training context ${fmtInt(d.training_context)}, target ${fmtInt(d.target_context)})</summary><pre class="inspect-text"></pre></details>`;
      box.querySelector("pre").textContent = d.text;
      plot(box.querySelector("svg"), { series: [{ x: d.wavelength.map((_, i) => i), y: d.wavelength, kind: "dots", colour: "#1c5fb8" }], ylog: true, xlabel: "pair", ylabel: "wavelength",
        hlines: trainLine.at ? [{ ...trainLine, colour: "#d6336c" }] : [] });
    } catch (e) {
      box.innerHTML = ""; const err = document.createElement("div"); err.className = "warn"; err.textContent = `error: ${e.message}`; box.appendChild(err);
    }
  }, 0));
  onResize(draw);
  load(); loadBound();
}

// ------------------------------------------------------------------ panel: real model

const isMatrix = v => Array.isArray(v) && v.length > 0 && v.every(r => Array.isArray(r) && r.length > 0 && r.every(x => typeof x === "number" || x === null));
const isLabelList = v => Array.isArray(v) && v.length > 0 && v.every(x => typeof x === "number" || typeof x === "string");

/**
 * Every 2-D numeric array in `obj`, with its key path. A sibling list whose length matches the
 * rows (or columns) labels them (for example `lengths` and `depths` next to `accuracy`).
 */
function findMatrices(obj, path = "", out = []) {
  if (out.length >= 12 || obj === null || typeof obj !== "object") return out;
  if (isMatrix(obj)) { out.push({ path: path || "(root)", rows: obj }); return out; }
  const entries = Object.entries(obj);
  for (const [k, v] of entries) {
    const p = path ? `${path}.${k}` : k;
    if (isMatrix(v) && !Array.isArray(obj)) {
      const lists = entries.filter(([k2, v2]) => k2 !== k && isLabelList(v2));
      const rowLab = lists.find(([, v2]) => v2.length === v.length);
      const colLab = lists.find(([k2, v2]) => v2.length === v[0].length && (!rowLab || k2 !== rowLab[0]));
      out.push({ path: p, rows: v, rowLabels: rowLab, colLabels: colLab });
      if (out.length >= 12) return out;
    } else {
      findMatrices(v, p, out);
    }
  }
  return out;
}

/** Sibling `className` paragraph with "Try: ... Predict: ..." text for one chart. */
function tryPredict(parent, tryText, predictText) {
  const p = document.createElement("p"); p.className = "try-predict";
  const b1 = document.createElement("b"); b1.textContent = "Try: ";
  const b2 = document.createElement("b"); b2.textContent = " Predict first: ";
  p.append(b1, document.createTextNode(tryText), b2, document.createTextNode(predictText));
  parent.appendChild(p);
  return p;
}

/** Where a result came from, and how to make your own. */
function resultSource(box, r) {
  const src = document.createElement("div"); src.className = "source";
  src.textContent = r.source === "committed"
    ? `Measured results committed in the repository (${r.committed}; see results/README.md). Your own run: ${r.how_to_produce}`
    : `From ${r.file}.` + (r.how_to_produce ? ` Produced by: ${r.how_to_produce}` : "");
  box.appendChild(src);
}

/** A labelled layer × head style heatmap on a canvas; returns { redraw(selected) }. */
function labelledHeatmap(fig, rows, opts) {
  const c = document.createElement("canvas"); c.height = opts.height || 220; c.style.height = `${opts.height || 220}px`;
  fig.appendChild(c);
  const vals = rows.flat().filter(v => typeof v === "number" && Number.isFinite(v));
  const lo = opts.lo ?? Math.min(...vals), hi = opts.hi ?? Math.max(...vals);
  const nr = rows.length, nc = Math.max(...rows.map(r => r.length));
  let map = null;
  const label = (ctx, text, x, y, align) => {
    ctx.font = "11px system-ui"; ctx.textAlign = align; ctx.lineWidth = 3; ctx.strokeStyle = "rgba(255,255,255,0.85)";
    ctx.strokeText(text, x, y); ctx.fillStyle = "#111"; ctx.fillText(text, x, y);
  };
  let selected = null;
  const redraw = (sel = selected) => {
    selected = sel;
    map = heatmap(c, nr, nc, (r, k) => { const v = rows[r][k]; return typeof v === "number" && Number.isFinite(v) ? viridis((v - lo) / Math.max(1e-12, hi - lo)) : NO_VALUE; }, (ctx, g) => {
      if (opts.rowLabels && g.sy >= 11) opts.rowLabels.forEach((t, r) => label(ctx, String(t), 3, g.y(r) + 4, "left"));
      if (opts.colLabels) {
        ctx.font = "11px system-ui";
        const widest = Math.max(...opts.colLabels.map(t => ctx.measureText(String(t)).width));
        if (widest + 4 <= g.sx) opts.colLabels.forEach((t, k) => label(ctx, String(t), g.x(k), 11, "center"));
      }
      if (opts.annotate !== undefined && g.sx >= 34 && g.sy >= 14) {
        for (let r = 0; r < nr; r++) for (let k = 0; k < rows[r].length; k++) {
          const v = rows[r][k]; if (typeof v === "number") label(ctx, v.toFixed(opts.annotate), g.x(k), g.y(r) + 4, "center");
        }
      }
      if (opts.boundaryRow !== undefined && opts.boundaryRow > 0 && opts.boundaryRow < nr) hline(ctx, opts.boundaryRow * g.sy, g.w, "#d6336c", [5, 3]);
      if (selected) {
        ctx.save(); ctx.strokeStyle = "#d6336c"; ctx.lineWidth = 2.5;
        if (selected.row !== undefined && selected.col !== undefined) ctx.strokeRect(selected.col * g.sx + 1, selected.row * g.sy + 1, g.sx - 2, g.sy - 2);
        else if (selected.row !== undefined) ctx.strokeRect(1, selected.row * g.sy + 1, g.w - 2, g.sy - 2);
        ctx.restore();
      }
    });
  };
  redraw(); onResize(() => redraw());
  if (opts.onPick) pickable(c, () => map, opts.onPick, opts.describe);
  return { canvas: c, redraw, lo, hi };
}

function renderPasskey(box, data) {
  const grid = document.createElement("div"); grid.className = "figures"; box.appendChild(grid);
  const f = document.createElement("figure"); grid.appendChild(f);
  const cap = document.createElement("figcaption");
  cap.textContent = `passkey accuracy, ${data.lengths.length} lengths × ${data.depths.length} depths; RoPE scaling: ${data.scaling}; ${data.trials} trial${data.trials === 1 ? "" : "s"} per cell; rows: context length (tokens), columns: needle depth (0 = start, 1 = end); dashed line: training context ${data.context_length}`;
  f.appendChild(cap);
  const cellAt = (r, k) => (data.cells || []).find(c => c.length === data.lengths[r] && c.depth === data.depths[k]);
  const readout = document.createElement("div"); readout.className = "readout";
  const boundary = data.lengths.findIndex(l => l > data.context_length);
  const hm = labelledHeatmap(f, data.accuracy, {
    lo: 0, hi: 1, annotate: 2, height: Math.min(320, 40 + 34 * data.lengths.length),
    rowLabels: data.lengths, colLabels: data.depths.map(d => `d=${d}`), boundaryRow: boundary < 0 ? undefined : boundary,
    describe: ({ row, col }) => `length ${data.lengths[row]}, depth ${data.depths[col]}: accuracy ${fmt(data.accuracy[row][col])}`,
    onPick: ({ row, col }) => {
      hm.redraw({ row, col });
      const cell = cellAt(row, col);
      readout.textContent = `length ${data.lengths[row]}, depth ${data.depths[col]}: accuracy ${fmt(data.accuracy[row][col])}` +
        (cell ? " — " + cell.trials.map(t => `key ${t.passkey} → ${t.answer ?? "no number"} (${t.prompt_tokens} tokens, generated ${JSON.stringify(t.generated)})`).join("; ") : "");
    },
  });
  f.appendChild(readout);
  readout.textContent = "Click a cell to see the passkeys, the model's answers and the prompt sizes.";
  const past = data.lengths.some(l => l > data.context_length);
  tryPredict(f, "click cells down one column (same needle depth, longer context) and read the model's actual answers." +
      (past ? " Compare the rows below the dashed line (past the training context) with the unscaled file." : " Then open the YaRN file and compare its rows past 8192."),
    past ? "with YaRN ×4 stretching the slow RoPE pairs, does retrieval past 8192 tokens survive, and at which depth does it fail first?"
         : "inside the 8192-token training context, is the needle found at every depth, or does the middle (depth 0.5) fail first as contexts grow?");
}

const SCALING_COLOURS = ["#111827", "#1c5fb8", "#d97706", "#059669", "#d6336c", "#7c3aed", "#0891b2", "#65a30d"];

function renderPerplexity(box, data) {
  const grid = document.createElement("div"); grid.className = "figures"; box.appendChild(grid);
  const readout = document.createElement("div"); readout.className = "readout";
  let picked = null;
  const charts = [];
  const draw = () => charts.forEach(({ svg, table }) => plot(svg, {
    series: data.scalings.map((name, i) => ({ x: data.lengths, y: table[i], colour: SCALING_COLOURS[i % SCALING_COLOURS.length], label: name, width: 2 })),
    xlog: true, ylog: true, xticks: data.lengths, xlabel: "context length (tokens)", ylabel: "perplexity",
    vlines: [{ at: data.context_length, label: `training ${data.context_length}`, dash: "5 3" }].concat(picked === null ? [] : [{ at: picked, colour: "#555", label: String(picked) }]),
    onPick: x => pick(x),
  }));
  const pick = x => {
    let best = 0;
    data.lengths.forEach((l, i) => { if (Math.abs(Math.log(l) - Math.log(x)) < Math.abs(Math.log(data.lengths[best]) - Math.log(x))) best = i; });
    picked = data.lengths[best];
    readout.textContent = `L = ${picked}: ` + data.scalings.map((s, i) => `${s} ${fmt(data.ppl[i][best])} (tail ${fmt(data.tail_ppl[i][best])})`).join(" · ");
    draw();
  };
  for (const [title, table] of [["whole window: every prediction with up to L tokens of context", data.ppl], [`last ${data.tail} predictions of each window (≈ L tokens of context)`, data.tail_ppl]]) {
    const f = document.createElement("figure"); grid.appendChild(f);
    const cap = document.createElement("figcaption"); cap.textContent = `perplexity vs context length, ${title}`; f.appendChild(cap);
    const svg = document.createElementNS(SVGNS, "svg"); svg.setAttribute("height", "240"); svg.classList.add("plot"); f.appendChild(svg);
    charts.push({ svg, table });
  }
  box.appendChild(readout);
  readout.textContent = `Text: ${data.source}, ${data.text_tokens} tokens, ${data.window_starts.length} window(s). Click a chart to read every scaling at one length.`;
  draw(); onResize(draw);
  tryPredict(box, "click the charts at 16K and compare the scalings; then at 1K, where no scaling is needed.",
    "past the 8192-token training context, which curve shoots up (the unscaled one, whose slow pairs reach angles never seen in training), and what does linear interpolation cost at short contexts, where it squeezes every position?");
}

function renderAttentionStats(box, data) {
  const grid = document.createElement("div"); grid.className = "figures quad"; box.appendChild(grid);
  const readout = document.createElement("div"); readout.className = "readout";
  const maps = [
    ["entropy", `entropy (nats; uniform ${fmt(data.uniform_entropy)})`, data.entropy, 1],
    ["mean_distance", `mean attended distance (tokens; uniform ${fmt(data.uniform_mean_distance)})`, data.mean_distance, 0],
    ["first_token_weight", "weight on the first token (attention sink)", data.first_token_weight, 2],
    ["mean_distance_after_first", "mean distance over the keys after the first (tokens)", data.mean_distance_after_first, 0],
  ];
  const views = [];
  let distView = null;
  const detailSvg = document.createElementNS(SVGNS, "svg"); detailSvg.setAttribute("height", "170"); detailSvg.classList.add("plot");
  let sel = null;
  const select = cell => {
    sel = cell;
    views.forEach(v => v.redraw(cell));
    if (distView) distView.redraw({ row: cell.row });
    const { row: l, col: h } = cell;
    readout.textContent = `layer ${data.layers[l]}, head ${data.heads[h]}: entropy ${fmt(data.entropy[l][h])} nats, mean distance ${fmt(data.mean_distance[l][h])}, ` +
      `first-token weight ${fmt(data.first_token_weight[l][h])}, distance after the first ${fmt(data.mean_distance_after_first[l][h])}`;
    const d = (data.heads_detail || []).find(x => x.layer === data.layers[l] && x.head === data.heads[h]);
    if (d) plot(detailSvg, { series: [{ x: d.distance_mass.map((_, i) => i), y: d.distance_mass, kind: "bars", label: `layer ${d.layer} head ${d.head}` }], xlabel: `distance bin (0: same token, 1, 2-3, …, ${data.distance_bins[d.distance_mass.length - 1]})`, ylabel: "weight", ymin: 0 });
  };
  for (const [key, title, rows, digits] of maps) {
    const f = document.createElement("figure"); grid.appendChild(f);
    f.dataset.stat = key;
    const cap = document.createElement("figcaption"); cap.textContent = `${title}; rows: layer 0 (top) … ${data.layers.length - 1}, columns: head 0 … ${data.heads.length - 1}`; f.appendChild(cap);
    views.push(labelledHeatmap(f, rows, { annotate: digits, height: 372, rowLabels: data.layers, colLabels: data.heads,
      describe: ({ row, col }) => `layer ${data.layers[row]} head ${data.heads[col]}: ${fmt(rows[row][col])}`, onPick: select }));
  }
  const explain = {
    entropy: ["click a low-entropy cell, then find the same head on the other three maps.", "are heads with low entropy the ones that put most weight on the first token, or ones that look at the previous token (distance 1)?"],
    mean_distance: ["compare early layers (top) with late layers; hover for exact values.", "with RoPE's decay, should the mean attended distance be far below the uniform value, or near it?"],
    first_token_weight: ["find the layers where most heads are bright.", "do the first two layers already dump weight on token 0, or does the sink appear only in deeper layers?"],
    mean_distance_after_first: ["click a head whose first-token weight is high and read its distance here.", "once the sink is removed, do those heads look locally (a few tokens back) or far?"],
  };
  grid.querySelectorAll("figure").forEach(f => tryPredict(f, ...explain[f.dataset.stat]));
  const f2 = document.createElement("figure"); grid.appendChild(f2);
  const cap2 = document.createElement("figcaption"); cap2.textContent = `attention weight by distance (mean over the heads of each layer); columns: ${data.distance_bins.join(", ")} tokens`; f2.appendChild(cap2);
  distView = labelledHeatmap(f2, data.distance_mass_by_layer, { lo: 0, height: 372, rowLabels: data.layers, colLabels: data.distance_bins,
    describe: ({ row, col }) => `layer ${data.layers[row]}, distance ${data.distance_bins[col]}: weight ${fmt(data.distance_mass_by_layer[row][col])}`,
    onPick: ({ row }) => select({ row, col: sel ? sel.col : 0 }) });
  tryPredict(f2, "click a layer row; the selected head's own histogram is drawn below.", "is most weight at distance 0–1 (local) and at the far end (the first token), with little in between?");
  const f3 = document.createElement("figure"); grid.appendChild(f3);
  const cap3 = document.createElement("figcaption"); cap3.textContent = "the selected head's attention weight by distance bin"; f3.append(cap3, detailSvg);
  tryPredict(f3, "pick a head in layer 0, then one in the last layer.", "which of the two spreads its weight over more distance bins?");
  box.appendChild(readout);
  const src = document.createElement("div"); src.className = "source"; src.textContent = `${data.tokens} tokens of ${data.source}; queries from ${data.query_from}; RoPE scaling ${data.scaling}.`; box.appendChild(src);
  select({ row: 0, col: 0 });
  onResize(() => { if (sel) select(sel); });
}

function renderGeneric(box, data) {
  const mats = findMatrices(data);
  if (!mats.length) { box.appendChild(document.createTextNode("(no 2-D tables of numbers found in this file)")); return; }
  const grid = document.createElement("div"); grid.className = "figures"; box.appendChild(grid);
  for (const m of mats) {
    const f = document.createElement("figure");
    const cap = document.createElement("figcaption"); cap.textContent = `${m.path}: ${m.rows.length} × ${m.rows[0].length}`;
    f.appendChild(cap); grid.appendChild(f);
    const hm = labelledHeatmap(f, m.rows, { height: 200, rowLabels: m.rowLabels && m.rowLabels[1], colLabels: m.colLabels && m.colLabels[1] });
    cap.textContent += ` (colour: ${fmt(hm.lo)} … ${fmt(hm.hi)}` +
      (m.rowLabels ? `; rows: ${m.rowLabels[0]}` : "") + (m.colLabels ? `; columns: ${m.colLabels[0]}` : "") + ")";
  }
  tryPredict(box, "hover the cells and compare rows.", "which rows or columns stand out, and why?");
}

/** The renderer for a result, by its shape (a known `posenc model` report) or generic heatmaps. */
function resultRenderer(data) {
  if (Array.isArray(data.accuracy) && Array.isArray(data.lengths) && Array.isArray(data.depths) && isMatrix(data.accuracy)) return renderPasskey;
  if (Array.isArray(data.scalings) && Array.isArray(data.lengths) && isMatrix(data.ppl) && isMatrix(data.tail_ppl)) return renderPerplexity;
  if (isMatrix(data.entropy) && isMatrix(data.mean_distance) && isMatrix(data.first_token_weight) && isMatrix(data.mean_distance_after_first) && isMatrix(data.distance_mass_by_layer)) return renderAttentionStats;
  return renderGeneric;
}

const RESULT_TITLES = {
  "passkey": "Passkey retrieval (model's own RoPE)",
  "passkey-yarn": "Passkey retrieval with YaRN ×4 (past the training context)",
  "perplexity": "Perplexity against context length, five RoPE scalings",
  "attention-stats": "Where each head looks: entropy and attended distance, layer × head",
};

function modelPanel(panel) {
  const body = role(panel, "body");
  const run = runner(panel);
  run("results", async () => {
    const idx = await api("results");
    body.innerHTML = "";
    for (const r of idx.results) {
      const box = document.createElement("div"); box.className = "result"; box.dataset.result = r.name;
      const h = document.createElement("h3"); h.textContent = RESULT_TITLES[r.name] || r.name; box.appendChild(h);
      body.appendChild(box);
      if (!r.source) {
        const hint = document.createElement("div"); hint.className = "hint";
        hint.textContent = `No ${r.file} yet. Produce it with:\n  ${r.how_to_produce}\nthen reload this page.`;
        box.appendChild(hint); continue;
      }
      resultSource(box, r);
      try {
        const data = await api(`results/${encodeURIComponent(r.name)}`);
        resultRenderer(data)(box, data);
      } catch (e) {
        box.appendChild(document.createTextNode(`cannot load: ${e.message}`));
      }
    }
  }, 0);
}

// ------------------------------------------------------------------ panel: exercises (learning path)

/** A new element with text content and a class. */
function elem(tag, content, cls) {
  const e = document.createElement(tag);
  if (content !== undefined && content !== null) e.textContent = String(content);
  if (cls) e.className = cls;
  return e;
}
/** A number as given (integers whole, others with up to 6 significant digits). */
function numStr(x) {
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-4 || a >= 1e7) ? x.toExponential(4) : String(Number(x.toPrecision(6)));
}
const isNumRow = v => Array.isArray(v) && v.length > 0 && v.every(x => typeof x === "number" || x === null);
const isNumMatrix = v => Array.isArray(v) && v.length > 0 && v.every(isNumRow);
const isRecordList = v => Array.isArray(v) && v.length > 0 && v.every(x => x && typeof x === "object" && !Array.isArray(x));

/** A small table of numbers: `rows` (arrays), optional row and column labels. */
function numTable(rows, rowLabels, colLabels) {
  const t = elem("table", null, "nums");
  const showRows = Array.isArray(rowLabels) && rowLabels.some(l => l !== "");
  if (colLabels) {
    const tr = elem("tr");
    if (showRows) tr.appendChild(elem("th"));
    colLabels.forEach(l => tr.appendChild(elem("th", l)));
    t.appendChild(tr);
  }
  rows.forEach((row, i) => {
    const tr = elem("tr");
    if (showRows) tr.appendChild(elem("th", rowLabels[i] ?? i));
    row.forEach(v => tr.appendChild(elem("td", v === null ? "–" : numStr(v))));
    t.appendChild(tr);
  });
  return t;
}

/**
 * The given numbers of an instance: scalars (and nested objects, flattened) on one line as
 * `name = value`, vectors and matrices as small tables, lists of records as tables keyed by field.
 */
function renderGiven(host, data) {
  host.innerHTML = "";
  const scalars = [];
  const blocks = [];
  const walk = (obj, prefix) => {
    for (const [k, v] of Object.entries(obj)) {
      const name = prefix ? `${prefix}.${k}` : k;
      if (isNumMatrix(v)) blocks.push([`${name} (${v.length} × ${v[0].length}, row 0 first)`, numTable(v, v.map((_, i) => `${i}`), v[0].map((_, j) => `${j}`))]);
      else if (isNumRow(v)) blocks.push([`${name} (${v.length})`, numTable([v], [""], v.map((_, j) => `${j}`))]);
      else if (isRecordList(v)) {
        const keys = [...new Set(v.flatMap(r => Object.keys(r)))];
        const t = elem("table", null, "nums");
        const head = elem("tr"); keys.forEach(key => head.appendChild(elem("th", key))); t.appendChild(head);
        v.forEach(r => { const tr = elem("tr"); keys.forEach(key => tr.appendChild(elem("td", r[key] === undefined ? "" : numStr(r[key])))); t.appendChild(tr); });
        blocks.push([name, t]);
      } else if (v && typeof v === "object" && !Array.isArray(v)) walk(v, name);
      else if (Array.isArray(v)) scalars.push([name, v.map(numStr).join(", ")]);
      else scalars.push([name, numStr(v)]);
    }
  };
  walk(data || {}, "");
  if (scalars.length) {
    const line = elem("div", null, "scalars");
    scalars.forEach(([k, v]) => { const s = elem("span"); s.append(elem("span", `${k} = `, "key"), elem("b", v)); line.appendChild(s); });
    host.appendChild(line);
  }
  if (blocks.length) {
    const row = elem("div", null, "blocks");
    blocks.forEach(([cap, table]) => { const f = elem("div", null, "block"); f.append(elem("div", cap, "cap"), table); row.appendChild(f); });
    host.appendChild(row);
  }
}

/** Shows a verdict from /api/learn/check (or a 400 message) in `box`. */
function renderVerdict(box, v, error) {
  box.innerHTML = "";
  if (error) {
    box.className = "verdict-box malformed";
    box.append(elem("b", "Cannot read that answer: "), elem("span", error));
    return;
  }
  box.className = `verdict-box ${v.correct ? "right" : "wrong"}`;
  box.appendChild(elem("b", v.correct ? "✓ correct" : "✗ not right yet"));
  if (v.max_error !== null && v.max_error !== undefined) {
    box.appendChild(elem("span", ` (largest error ${numStr(v.max_error)}, tolerance ${numStr(v.tolerance)})`, "muted"));
  }
  if (!v.correct && v.hint) box.appendChild(elem("div", `Hint: ${v.hint}`, "hint"));
  if (v.correct && v.feedback) box.appendChild(elem("div", v.feedback, "feedback"));
  if (v.explanations && v.explanations.length) {
    const ul = elem("ul", null, "options");
    for (const o of v.explanations) {
      const li = elem("li", null, o.correct ? "right" : "");
      li.append(elem("b", `${o.correct ? "✓" : "✗"} ${o.key}. `), elem("span", o.text), elem("div", o.explanation, "why"));
      ul.appendChild(li);
    }
    box.appendChild(ul);
  }
}

function learnPanel(panel) {
  const run = runner(panel);
  const score = { checks: 0, right: 0, solved: new Set() };
  let current = null; // the instance on screen
  const showScore = () => {
    role(panel, "score").textContent = `score: ${score.right} right of ${score.checks} checks · parts solved: ${score.solved.size}`;
  };
  const seedOf = () => Math.max(0, Math.floor(Number(ctl(panel, "seed").value) || 0));

  const renderPart = (inst, p) => {
    const box = elem("div", null, "part");
    box.dataset.part = p.part;
    const q = elem("div", null, "q");
    q.append(elem("b", `(${p.part}) `), elem("span", p.question));
    box.appendChild(q);
    let read;
    if (p.answer_kind === "choice") {
      const list = elem("div", null, "choices");
      for (const c of p.choices) {
        const lab = elem("label", null, "choice");
        const r = document.createElement("input");
        r.type = "radio"; r.name = `answer-${p.part}`; r.value = c.key;
        lab.append(r, elem("b", ` ${c.key}. `), elem("span", c.text));
        list.appendChild(lab);
      }
      box.appendChild(list);
      read = () => { const r = box.querySelector(`input[name="answer-${p.part}"]:checked`); return r ? r.value : null; };
    } else {
      const input = document.createElement("input");
      input.type = "text"; input.name = `answer-${p.part}`; input.className = "answer";
      input.placeholder = p.answer_kind === "matrix" ? "rows like 1,2;3,4" : p.answer_format;
      input.spellcheck = false; input.autocomplete = "off";
      input.addEventListener("keydown", ev => { if (ev.key === "Enter") check(); });
      box.appendChild(input);
      const tol = p.tolerance ? `; each number within ±${numStr(p.tolerance)}` : p.tolerance === 0 ? "; exact" : "";
      const shape = p.shape && p.shape.length ? ` (${p.shape.join(" × ")} numbers)` : "";
      box.appendChild(elem("div", `format: ${p.answer_format}${shape}${tol}`, "format"));
      read = () => input.value;
    }
    const button = elem("button", `Check (${p.part})`);
    button.type = "button"; button.dataset.role = `check-${p.part}`;
    const verdict = elem("div", null, "verdict-box");
    verdict.dataset.role = `verdict-${p.part}`;
    box.append(button, verdict);
    const check = () => run(`check ${p.part}`, async () => {
      const answer = read();
      if (answer === null) { renderVerdict(verdict, null, "pick an option first"); return; }
      const key = `${inst.exercise}:${inst.seed}`;
      try {
        const v = await api("learn/check", {}, JSON.stringify({ n: inst.exercise, seed: inst.seed, part: p.part, answer }));
        if (current !== inst) return; // the exercise changed meanwhile
        score.checks += 1;
        if (v.correct) { score.right += 1; score.solved.add(`${key}:${p.part}`); }
        showScore();
        renderVerdict(verdict, v);
      } catch (e) {
        if (e.status === 400) renderVerdict(verdict, null, e.message); else throw e;
      }
    }, 0);
    button.addEventListener("click", check);
    return box;
  };

  const load = () => run("instance", async fresh => {
    const d = await api("learn/instance", { n: ctl(panel, "exercise").value || 1, seed: seedOf() });
    if (!fresh()) return;
    current = d;
    role(panel, "ex-title").textContent = `${d.exercise}. ${d.title} (seed ${d.seed})`;
    role(panel, "setup").textContent = d.setup;
    renderGiven(role(panel, "data"), d.data);
    const parts = role(panel, "parts");
    parts.innerHTML = "";
    d.parts.forEach(p => parts.appendChild(renderPart(d, p)));
  });

  const loadWalkthrough = () => run("walkthrough", async fresh => {
    const w = await api("learn/explain", { topic: ctl(panel, "topic").value });
    if (!fresh()) return;
    const host = role(panel, "walkthrough");
    host.innerHTML = "";
    host.appendChild(elem("h4", w.title));
    w.intro.forEach(t => host.appendChild(elem("p", t)));
    for (const sec of w.sections) {
      const box = elem("div", null, "section");
      box.append(elem("h5", sec.title), elem("p", sec.text));
      const blocks = elem("div", null, "blocks");
      for (const m of sec.matrices) {
        const f = elem("div", null, "block");
        f.append(elem("div", m.name, "cap"), numTable(m.rows, m.row_labels, m.column_labels));
        blocks.appendChild(f);
      }
      if (sec.matrices.length) box.appendChild(blocks);
      if (sec.values.length) {
        const t = elem("table", null, "values");
        sec.values.forEach(v => { const tr = elem("tr"); tr.append(elem("td", v.name), elem("td", numStr(v.value))); t.appendChild(tr); });
        box.appendChild(t);
      }
      host.appendChild(box);
    }
  });

  const form = role(panel, "advise-form");
  const advise = () => run("advise", async fresh => {
    const f = name => form.querySelector(`[name="${name}"]`);
    const a = await api("learn/advise", { train_len: f("train_len").value, target_len: f("target_len").value, arch: f("arch").value, kv_cache: f("kv_cache").checked, retrieval: f("retrieval").checked });
    if (!fresh()) return;
    const host = role(panel, "advice");
    host.innerHTML = "";
    host.appendChild(elem("p", a.summary, "summary"));
    if (a.scaling) {
      const s = a.scaling;
      host.appendChild(elem("div", `scaling: ${s.method}, factor ${numStr(s.factor)} over ${fmtInt(s.original_max_position_embeddings)} tokens, attention factor ${numStr(s.attention_factor)}`));
      host.appendChild(elem("pre", JSON.stringify(s.config, null, 1), "config"));
    } else {
      host.appendChild(elem("div", "scaling: none needed (the target fits in the training length)"));
    }
    const list = (title, items, item) => {
      if (!items.length) return;
      host.appendChild(elem("h5", title));
      const ul = elem("ul", null, "reasons");
      items.forEach(x => ul.appendChild(item(x)));
      host.appendChild(ul);
    };
    const reason = r => { const li = elem("li"); li.append(elem("b", `${r.topic}: `), elem("span", r.text)); return li; };
    list("reasons", a.reasons, reason);
    list("not recommended", a.not_recommended, reason);
    list("diagnostics to run", a.diagnostics, d => { const li = elem("li"); li.append(elem("code", d.command), elem("span", ` — ${d.why}`)); return li; });
    if (a.facts.length) {
      host.appendChild(elem("h5", "numbers from posenc"));
      const t = elem("table", null, "values");
      a.facts.forEach(v => { const tr = elem("tr"); tr.append(elem("td", v.name), elem("td", numStr(v.value))); t.appendChild(tr); });
      host.appendChild(t);
    }
  }, 150);

  run("exercises", async () => {
    const [list, topics] = await Promise.all([api("learn/exercises"), api("learn/topics")]);
    const sel = ctl(panel, "exercise");
    for (const e of list.exercises) { const o = elem("option", `${e.exercise}. ${e.title}`); o.value = e.exercise; o.title = e.computes; sel.appendChild(o); }
    const tsel = ctl(panel, "topic");
    for (const t of topics.topics) { const o = elem("option", t); o.value = t; tsel.appendChild(o); }
    load(); loadWalkthrough();
  }, 0);
  ctl(panel, "exercise").addEventListener("input", load);
  ctl(panel, "seed").addEventListener("input", load);
  role(panel, "new-seed").addEventListener("click", () => { ctl(panel, "seed").value = Math.floor(Math.random() * 1e6); load(); });
  ctl(panel, "topic").addEventListener("input", loadWalkthrough);
  form.addEventListener("submit", ev => { ev.preventDefault(); advise(); });
  form.querySelectorAll("select, input[type=checkbox]").forEach(e => e.addEventListener("input", advise));
  showScore();
  advise();
}

// ------------------------------------------------------------------ start

// Fixed CSS heights for heatmaps (the drawing buffer is resized to match on every draw).
document.querySelectorAll("canvas:not(.square)").forEach(c => { c.style.height = `${c.getAttribute("height")}px`; });

const PANELS = { why: whyPanel, sinusoidal: sinusoidalPanel, learned: learnedPanel, rope: ropePanel, alibi: alibiPanel, relative: relativePanel, longctx: longctxPanel, model: modelPanel, learn: learnPanel };
for (const panel of document.querySelectorAll("[data-panel]")) {
  const init = PANELS[panel.dataset.panel];
  if (init) init(panel);
}
