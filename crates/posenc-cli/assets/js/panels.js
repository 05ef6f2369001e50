// The scheme panels: why position, sinusoidal, learned, relative, RoPE, ALiBi, long context.

import {
  api, runner, fig, view, role, ctl, fmt, fmtInt, elem, el, plot, heatView, pickable, vline, hline,
  nearestColumn, columnsFor, bindOutputs, onResize, diverging, sequential, viridis, cyclic, rgbCss,
  DIVERGING, VIRIDIS, SEQUENTIAL, NO_VALUE, svgButton,
} from "./core.js";
import { drawQk2d, drawBound, drawSimilarity } from "./canonical.js";

// ------------------------------------------------------------------ why position

/** A small HTML table of weights, cells shaded by value. */
function weightTable(host, tokens, weights) {
  host.innerHTML = "";
  const t = elem("table");
  const head = elem("tr");
  head.appendChild(elem("th"));
  tokens.forEach(k => { const th = elem("th", k); th.scope = "col"; head.appendChild(th); });
  t.appendChild(head);
  weights.forEach((row, i) => {
    const tr = elem("tr");
    const th = elem("th", tokens[i]); th.scope = "row"; tr.appendChild(th);
    row.forEach(w => {
      const td = elem("td", w.toFixed(2));
      td.style.background = rgbCss(sequential(w));
      if (w > 0.6) td.style.color = "#fff";
      tr.appendChild(td);
    });
    t.appendChild(tr);
  });
  host.appendChild(t);
}

export function whyPanel(panel) {
  const verdict = role(panel, "verdict");
  const clear = () => {
    panel._data = null;
    verdict.textContent = "No verdict: the last request failed (see the message below).";
    verdict.className = "verdict error";
    fig(panel, "wa").innerHTML = ""; fig(panel, "wb").innerHTML = ""; fig(panel, "outs").innerHTML = "";
  };
  const run = runner(panel, clear);
  const load = () => run("why", async fresh => {
    const d = await api("why", { scheme: ctl(panel, "scheme").value, a: ctl(panel, "a").value, b: ctl(panel, "b").value });
    if (!fresh()) return;
    panel._data = d;
    draw();
  });
  const draw = () => {
    const d = panel._data; if (!d) return;
    weightTable(fig(panel, "wa"), d.a.tokens, d.a.weights);
    weightTable(fig(panel, "wb"), d.b.tokens, d.b.weights);
    if (!d.same_words) { verdict.textContent = "The sentences do not use the same tokens, so there is no permutation to compare."; verdict.className = "verdict"; }
    else if (d.is_permutation) { verdict.textContent = `scheme = ${d.scheme}: the outputs of B are exactly A's outputs, permuted (largest difference ${fmt(d.max_abs_diff)}). The head cannot tell the sentences apart.`; verdict.className = "verdict same"; }
    else { verdict.textContent = `scheme = ${d.scheme}: the same word gets a different output in A and B (largest difference ${fmt(d.max_abs_diff)}). Order now matters.`; verdict.className = "verdict"; }
    const series = [];
    const colours = ["#1c5fb8", "#d6336c", "#2b8a3e", "#e67700", "#7048e8", "#0b7285", "#862e9c", "#5c940d"];
    (d.matches.length ? d.matches : d.a.tokens.map((_, i) => ({ a: i, b: null }))).slice(0, 8).forEach((mt, k) => {
      const x = [...Array(d.dim).keys()];
      series.push({ x, y: d.a.outputs[mt.a], colour: colours[k], label: `${d.a.tokens[mt.a]} (A ${mt.a}${mt.b !== null ? `, B ${mt.b}` : ""})` });
      if (mt.b !== null) series.push({ x, y: d.b.outputs[mt.b], colour: colours[k], kind: "dots", r: 3.5 });
    });
    plot(fig(panel, "outs"), { series, xlabel: "output dimension (line = A, dots = same word in B)", ylabel: "value", aria: "outputs of each word in sentence A and in sentence B" });
  };
  panel.querySelectorAll("select, input").forEach(e => e.addEventListener("input", load));
  onResize(draw);
  load();
}

// ------------------------------------------------------------------ sinusoidal

export function sinusoidalPanel(panel) {
  const run = runner(panel);
  const lenOf = () => Math.round(Math.pow(2, Number(ctl(panel, "len").value)));
  const baseOf = () => Math.round(Math.pow(10, Number(ctl(panel, "base").value)));
  bindOutputs(panel, { len: () => fmtInt(lenOf()), dim: v => v, base: () => fmtInt(baseOf()) });
  const sel = { position: 10, dim: 0 };
  let map = null, simMap = null;
  const heat = heatView(view(panel, "heat"));
  const sim = heatView(view(panel, "sim"));
  const pairOf = (t, d) => t.layout === "interleaved" ? Math.floor(d / 2) : d % (t.dim / 2);
  const loadTable = () => run("table", async fresh => {
    const d = await api("sinusoidal/table", { len: lenOf(), dim: ctl(panel, "dim").value, base: baseOf(), layout: ctl(panel, "layout").value, width: columnsFor(heat.canvas), round: 3 });
    if (!fresh()) return;
    panel._table = d;
    sel.position = Math.min(sel.position, d.len - 1);
    sel.dim = Math.min(sel.dim, d.dim - 1);
    drawTable(); loadRow(); loadSim();
  });
  const loadRow = () => run("row", async fresh => {
    const t = panel._table; if (!t) return;
    const d = await api("sinusoidal/row", { position: sel.position, dim: t.dim, base: t.base, layout: t.layout });
    if (!fresh()) return;
    panel._row = d; drawRow();
  }, 30);
  const loadSim = () => run("similarity", async fresh => {
    const t = panel._table; if (!t) return;
    const d = await api("sinusoidal/similarity", { len: 64, start: sel.position, dim: t.dim, base: t.base, layout: t.layout });
    if (!fresh()) return;
    panel._sim = d; drawSim();
  }, 120);
  const drawTable = () => {
    const t = panel._table; if (!t) return;
    const n = t.positions.length;
    const col = nearestColumn(t.positions, sel.position);
    const greyRow = r => {
      const pad = t.layout !== "interleaved" && r >= 2 * Math.floor(t.dim / 2);
      return !pad && t.aliased_pairs[pairOf(t, r)];
    };
    const nGrey = [...Array(t.dim).keys()].filter(greyRow).length;
    map = heat.draw({
      rows: t.dim, cols: n, colour: (r, c) => diverging(t.values[c * t.dim + r]), grey: greyRow,
      overlay: (ctx, g) => { vline(ctx, g.x(col), g.h, "#000"); hline(ctx, g.y(sel.dim), g.w, "rgba(0,0,0,0.6)", [4, 3]); },
      x: { lo: 0, hi: t.len, label: `position (${n < t.len ? `${n} sampled columns of ${fmtInt(t.len)}` : "every position"})` },
      y: { lo: 0, hi: t.dim - 1, label: "dimension" },
      bar: { kind: "ramp", stops: DIVERGING, lo: -1, hi: 1, label: "value" },
      greyNote: nGrey ? `${nGrey} grey rows: wavelength < 2 columns (aliased)` : "",
      aria: `sinusoidal table, ${t.dim} dimensions by ${fmtInt(t.len)} positions; selected position ${sel.position}, dimension ${sel.dim}`,
    });
    loadCurve();
  };
  const loadCurve = () => run("curve", async fresh => {
    const t = panel._table; if (!t) return;
    const pair = pairOf(t, sel.dim);
    const span = Math.max(32, Math.ceil(4 * t.wavelengths[pair]));
    let c = t;
    if (span < t.len) {
      const start = Math.max(0, Math.min(t.len - span, Math.round(sel.position - span / 2)));
      c = await api("sinusoidal/table", { start, len: span, dim: t.dim, base: t.base, layout: t.layout, width: 400, round: 4 });
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
      ymin: -1.05, ymax: 1.05, xlabel: "position", ylabel: "value", vlines: [{ at: sel.position, colour: "#000" }],
      onPick: x => { sel.position = Math.max(0, Math.min(t.len - 1, Math.round(x))); drawTable(); loadRow(); loadSim(); },
    });
  };
  const drawRow = () => {
    const r = panel._row; if (!r) return;
    role(panel, "row-cap").textContent = `row of position ${fmtInt(r.position)}: sin values (red) and cos values (blue) by pair`;
    const sinX = [], sinY = [], cosX = [], cosY = [];
    r.values.forEach((v, d) => { if (r.function[d] === "sin") { sinX.push(r.pair[d]); sinY.push(v); } else if (r.function[d] === "cos") { cosX.push(r.pair[d]); cosY.push(v); } });
    const selPair = r.layout === "interleaved" ? Math.floor(sel.dim / 2) : sel.dim % (r.dim / 2);
    plot(fig(panel, "row"), {
      series: [{ x: sinX, y: sinY, colour: "#d6336c", label: "sin" }, { x: cosX, y: cosY, colour: "#1c5fb8", label: "cos" }],
      ymin: -1.05, ymax: 1.05, xlabel: "pair i (frequency 1/base^(2i/d))", ylabel: "value", vlines: [{ at: selPair, colour: "#000", dash: "4 3" }],
      onPick: x => { const p = Math.max(0, Math.min(r.dim / 2 - 1, Math.round(x))); sel.dim = r.layout === "interleaved" ? 2 * p : p; drawTable(); drawRow(); },
    });
  };
  const drawSim = () => {
    const d = panel._sim; if (!d) return;
    simMap = drawSimilarity(panel, sim, d);
  };
  pickable(heat.canvas, () => map, ({ row, col }) => {
    const t = panel._table; if (!t) return;
    sel.position = t.positions[col]; sel.dim = row; drawTable(); loadRow(); drawRow(); loadSim();
  }, ({ row, col }) => { const t = panel._table; return t && `position ${t.positions[col]}, dim ${row}: ${fmt(t.values[col * t.dim + row], 4)}${t.aliased_pairs[pairOf(t, row)] ? " (aliased at this zoom)" : ""}`; });
  pickable(sim.canvas, () => simMap, null, ({ row, col }) => { const d = panel._sim; return d && `PE(${d.positions[row]})·PE(${d.positions[col]}) / PE·PE = ${fmt(d.values[row * d.positions.length + col], 4)} (offset ${d.positions[row] - d.positions[col]})`; });
  panel.querySelectorAll(".controls select, .controls input").forEach(e => e.addEventListener("input", loadTable));
  onResize(() => { loadTable(); drawSim(); });
  loadTable();
}

// ------------------------------------------------------------------ learned

export function learnedPanel(panel) {
  const run = runner(panel);
  bindOutputs(panel, { max_positions: v => v, dim: v => v, resize_to: v => v });
  const sel = { position: 5 };
  const maps = {};
  const views = { orig: heatView(view(panel, "orig")), resized: heatView(view(panel, "resized")) };
  const load = () => run("table", async fresh => {
    const maxp = Number(ctl(panel, "max_positions").value);
    const resizeTo = Number(ctl(panel, "resize_to").value);
    const len = Math.max(2 * maxp, resizeTo + Math.ceil(resizeTo / 4));
    const d = await api("learned/table", {
      max_positions: maxp, dim: ctl(panel, "dim").value, seed: ctl(panel, "seed").value || 0, std: 1,
      len, resize_to: resizeTo, width: columnsFor(views.orig.canvas), round: 3,
    });
    if (!fresh()) return;
    panel._data = d; draw();
  });
  // Position `pos` of the original table sits at the same relative place in a table of `rows`
  // rows; past the original table there is no such place.
  const scaledPos = (d, rows, pos) => pos < d.table.max_positions ? Math.round(pos * (rows - 1) / Math.max(1, d.table.max_positions - 1)) : null;
  const drawOne = (name, t, len, dim, pos) => {
    const n = t.positions.length;
    const col = pos === null ? null : nearestColumn(t.positions, pos);
    const edge = nearestColumn(t.positions, t.max_positions);
    maps[name] = views[name].draw({
      rows: dim, cols: n,
      colour: (r, c) => { const row = t.rows[c]; return row ? diverging(row[r], 2.5) : NO_VALUE; },
      overlay: (ctx, g) => {
        vline(ctx, edge * g.sx, g.h, "#d6336c", [6, 4]);
        if (col !== null) vline(ctx, g.x(col), g.h, "#000");
      },
      x: { lo: 0, hi: len, label: `position (${fmtInt(t.max_positions)} rows; hatched: no row)`, marks: [{ at: t.max_positions, label: `${t.max_positions} rows` }] },
      y: { lo: 0, hi: dim - 1, label: "dim" },
      bar: { kind: "ramp", stops: DIVERGING, lo: -2.5, hi: 2.5, label: "value (std 1)" },
      aria: `${name === "orig" ? "original" : "resized"} learned table with ${t.max_positions} rows`,
    });
  };
  const draw = () => {
    const d = panel._data; if (!d) return;
    const R = d.resized ? d.resized.max_positions : 0;
    const scaled = d.resized ? scaledPos(d, R, sel.position) : null;
    drawOne("orig", d.table, d.len, d.dim, sel.position);
    if (d.resized) drawOne("resized", d.resized, d.len, d.dim, scaled);
    const rowAt = (t, pos) => { if (pos >= t.max_positions) return null; const c = nearestColumn(t.positions, pos); return t.rows[c]; };
    const x = [...Array(d.dim).keys()];
    const series = [];
    const r0 = rowAt(d.table, sel.position);
    if (r0) series.push({ x, y: r0, colour: "#1c5fb8", label: `original row ${sel.position}` });
    let cap = `position ${fmtInt(sel.position)}: `;
    if (!r0) cap += `no row in the original table (it has ${d.table.max_positions} rows, 0…${d.table.max_positions - 1}). `;
    if (d.resized) {
      if (scaled !== null) {
        const r1 = rowAt(d.resized, scaled);
        if (r1) series.push({ x, y: r1, colour: "#d6336c", label: `resized row ${scaled}`, kind: "dots" });
        cap += `resized row ${scaled} (of ${R}) sits at the same relative place.`;
      } else {
        cap += sel.position < R ? `The resized table (${R} rows) has a row ${sel.position}, but it is not this position's row stretched: it interpolates rows near ${Math.round(sel.position * (d.table.max_positions - 1) / Math.max(1, R - 1))} of the original.`
          : `The resized table (${R} rows) has no row here either.`;
      }
    }
    role(panel, "row-cap").textContent = cap;
    if (series.length) plot(fig(panel, "row"), { series, xlabel: "dimension", ylabel: "value" });
    else fig(panel, "row").innerHTML = "";
  };
  for (const name of ["orig", "resized"]) {
    pickable(views[name].canvas, () => maps[name], ({ col }) => {
      const d = panel._data; if (!d) return;
      const t = name === "orig" ? d.table : d.resized;
      let pos = t.positions[col];
      // A row of the resized table comes from the same relative place of the original.
      if (name === "resized") pos = pos < t.max_positions ? Math.round(pos * (d.table.max_positions - 1) / Math.max(1, t.max_positions - 1)) : d.table.max_positions + (pos - t.max_positions);
      sel.position = pos; draw();
    }, ({ col }) => { const d = panel._data; if (!d) return ""; const t = name === "orig" ? d.table : d.resized; const p = t.positions[col]; return `position ${p}: ${p < t.max_positions ? "row " + p : "no row"}`; });
  }
  panel.querySelectorAll(".controls input").forEach(e => e.addEventListener("input", load));
  onResize(load);
  load();
}

// ------------------------------------------------------------------ relative

export function relativePanel(panel) {
  const run = runner(panel);
  bindOutputs(panel, { num_buckets: v => v, max_distance: v => v, clip: v => v });
  const sel = { rel: null };
  const maps = {};
  const t5v = heatView(view(panel, "t5mat"));
  const shawv = heatView(view(panel, "shaw"));
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
    maps.t5 = t5v.draw({
      rows: L, cols: L,
      colour: (r, c) => { const b = d.matrix[r * L + c]; if (bucketAtSel !== null && b === bucketAtSel) return [214, 51, 108]; return viridis(b / (d.num_buckets - 1)); },
      x: { lo: 0, hi: L, cells: true, label: "key" }, y: { lo: 0, hi: L - 1, label: "query" },
      bar: { kind: "ramp", stops: VIRIDIS, lo: 0, hi: d.num_buckets - 1, label: bucketAtSel === null ? "bucket" : `bucket (pink: ${bucketAtSel})` },
      aria: `T5 bucket matrix, ${L} by ${L}`,
    });
  };
  const drawShaw = () => {
    const d = panel._shaw; if (!d) return;
    const L = d.len;
    maps.shaw = shawv.draw({
      rows: L, cols: L,
      colour: (r, c) => viridis(d.num_embeddings > 1 ? d.matrix[r * L + c] / (d.num_embeddings - 1) : 0),
      x: { lo: 0, hi: L, cells: true, label: "key" }, y: { lo: 0, hi: L - 1, label: "query" },
      bar: { kind: "ramp", stops: VIRIDIS, lo: -d.clip, hi: d.clip, label: "clip(k − q)" },
      aria: `Shaw index matrix, clip ${d.clip}`,
    });
  };
  pickable(t5v.canvas, () => maps.t5, ({ row, col }) => { sel.rel = col - row; drawT5(); },
    ({ row, col }) => { const d = panel._t5; return d && `query ${row}, key ${col} (k − q = ${col - row}): bucket ${d.matrix[row * d.len + col]}`; });
  pickable(shawv.canvas, () => maps.shaw, null, ({ row, col }) => { const d = panel._shaw; return d && `query ${row}, key ${col}: clip(k − q) = ${d.matrix[row * d.len + col] - d.clip} (row ${d.matrix[row * d.len + col]} of the ${d.num_embeddings} vectors)`; });
  for (const n of ["bidirectional", "num_buckets", "max_distance"]) ctl(panel, n).addEventListener("input", loadT5);
  ctl(panel, "clip").addEventListener("input", loadShaw);
  onResize(() => { drawT5(); drawShaw(); });
  loadT5(); loadShaw();
}

// ------------------------------------------------------------------ RoPE

export function ropePanel(panel) {
  const run = runner(panel);
  const baseOf = () => Math.round(Math.pow(10, Number(ctl(panel, "base").value)));
  const lenOf = () => Math.pow(2, Number(ctl(panel, "len").value));
  // Start on a middle pair: pair 0 turns once every 6 positions and hides everything else.
  const midPair = () => Math.floor(Number(ctl(panel, "head_dim").value) / 8);
  const sel = { pair: midPair() };
  bindOutputs(panel, { base: () => fmtInt(baseOf()), position: v => fmtInt(v), len: () => fmtInt(lenOf()), s: v => fmtInt(v) });
  const common = () => ({ head_dim: ctl(panel, "head_dim").value, base: baseOf() });
  let map = null;
  const angles = heatView(view(panel, "angles"));
  const loadRotation = () => run("rotation", async fresh => {
    const d = await api("rope/rotation", { ...common(), position: ctl(panel, "position").value });
    if (!fresh()) return;
    panel._rot = d; drawHands(); drawAngles();
  }, 20);
  const loadAngles = () => run("angles", async fresh => {
    const len = lenOf();
    ctl(panel, "position").max = String(len - 1);
    const d = await api("rope/angles", { ...common(), len, width: columnsFor(angles.canvas), round: 3 });
    if (!fresh()) return;
    panel._angles = d; drawAngles();
  });
  const loadDecay = () => run("decay", async fresh => {
    const d = await api("rope/decay", { ...common(), max_distance: lenOf(), width: 400, round: 3 });
    if (!fresh()) return;
    panel._decay = d; drawDecay();
  });
  const loadBound = () => run("bound", async fresh => {
    const d = await api("rope/decay_bound", { ...common(), max_distance: Math.min(lenOf(), 65536), points: 400 });
    if (!fresh()) return;
    panel._bound = d; drawBound(panel, d);
  });
  const loadQk = () => run("qk2d", async fresh => {
    const d = await api("rope/qk2d", { ...common(), pair: sel.pair, m: ctl(panel, "qm").value || 0, n: ctl(panel, "qn").value || 0, s: ctl(panel, "s").value, max_offset: 64, points: 257 });
    if (!fresh()) return;
    panel._qk = d; drawQk2d(panel, d);
  }, 40);
  const loadCheck = () => run("check", async fresh => {
    const d = await api("rope/relative_check", { ...common(), m: ctl(panel, "m").value || 0, n: ctl(panel, "n").value || 0, s: ctl(panel, "s").value });
    if (!fresh()) return;
    role(panel, "check").innerHTML = `q·k at (m, n) = (${d.m}, ${d.n}): <b>${d.score_mn.toFixed(6)}</b><br>` +
      `q·k at (m+s, n+s) = (${d.m + d.s}, ${d.n + d.s}): <b>${d.score_shifted.toFixed(6)}</b><br>` +
      `difference ${d.abs_diff.toExponential(2)} (float32 rounding): the score depends only on m − n = ${d.m - d.n}.`;
  }, 30);
  const pickPair = i => { sel.pair = i; drawHands(); drawAngles(); drawDecay(); loadQk(); };
  const drawHands = () => {
    const d = panel._rot; if (!d) return;
    const svg = fig(panel, "hands");
    // Redrawing replaces the hands: keep keyboard focus on the same pair.
    const focused = svg.contains(document.activeElement) ? [...svg.children].indexOf(document.activeElement) : -1;
    svg.innerHTML = "";
    svg.setAttribute("role", "group");
    svg.setAttribute("aria-label", `rotation of each pair at position ${d.position}`);
    const W = Math.max(200, svg.clientWidth || 600);
    const n = d.cos.length;
    const perRow = Math.min(n, Math.max(8, Math.floor(W / 34)));
    const rows = Math.ceil(n / perRow);
    const cell = W / perRow, R = Math.min(14, cell / 2 - 3);
    const H = rows * (2 * R + 16) + 4;
    svg.setAttribute("height", H); svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    for (let i = 0; i < n; i++) {
      const cx = (i % perRow + 0.5) * cell, cy = Math.floor(i / perRow) * (2 * R + 16) + R + 3;
      const g = el("g", {}, svg);
      el("circle", { cx, cy, r: R, fill: i === sel.pair ? "#fde2ea" : "#f3f4f6", stroke: i === sel.pair ? "#d6336c" : "#bbb" }, g);
      el("line", { x1: cx, y1: cy, x2: cx + R * d.cos[i], y2: cy - R * d.sin[i], stroke: "#1d2330", "stroke-width": 2 }, g);
      el("text", { x: cx, y: cy + R + 11, "text-anchor": "middle", "font-size": 9 }, g).textContent = i;
      el("title", {}, g).textContent = `pair ${i}: angle ${fmt(d.angle[i])} rad, wavelength ${fmt(d.frequencies.wavelength[i], 1)}`;
      svgButton(g, `pair ${i}, angle ${fmt(d.angle[i])} radians, wavelength ${fmt(d.frequencies.wavelength[i], 1)} positions`, () => pickPair(i));
    }
    if (focused >= 0 && svg.children[focused]) svg.children[focused].focus();
  };
  const drawAngles = () => {
    const d = panel._angles; if (!d) return;
    const n = d.positions.length;
    const pos = Number(ctl(panel, "position").value);
    const col = nearestColumn(d.positions, pos);
    const nGrey = d.aliased.filter(Boolean).length;
    map = angles.draw({
      rows: d.pairs, cols: n, colour: (r, c) => cyclic(d.angles[r * n + c]), grey: r => d.aliased[r],
      overlay: (ctx, g) => { vline(ctx, g.x(col), g.h, "#e03131"); hline(ctx, g.y(sel.pair), g.w, "#e03131", [4, 3]); },
      x: { lo: 0, hi: d.len, label: `position; selected pair ${sel.pair}` },
      y: { lo: 0, hi: d.pairs - 1, label: "pair" },
      bar: { kind: "cyclic", label: "angle mod 2π (cyclic)" },
      greyNote: nGrey ? `${nGrey} grey rows: wavelength < 2 columns (aliased)` : "",
      aria: `RoPE angle map, ${d.pairs} pairs by ${fmtInt(d.len)} positions`,
    });
  };
  const drawDecay = () => {
    const d = panel._decay; if (!d) return;
    const n = d.distances.length;
    const series = [];
    const colour = i => rgbCss(viridis(0.9 * i / Math.max(1, d.pairs - 1)));
    for (let i = 0; i < d.pairs; i++) {
      if (i === sel.pair) continue;
      series.push({ x: d.distances, y: d.distances.map((_, c) => d.per_pair[i * n + c]), colour: colour(i), width: 0.7, opacity: 0.45 });
    }
    series.push({ x: [], y: [], colour: colour(0), label: "pair 0 (fastest)", width: 2 });
    series.push({ x: [], y: [], colour: colour(d.pairs - 1), label: `pair ${d.pairs - 1} (slowest)`, width: 2 });
    series.push({ x: d.distances, y: d.distances.map((_, c) => d.per_pair[sel.pair * n + c]), colour: "#d6336c", width: 1.8, label: `selected pair ${sel.pair}` });
    series.push({ x: d.distances, y: d.mean, colour: "#111", width: 2.6, label: "mean over pairs" });
    plot(fig(panel, "decay"), { series, ymin: -1.05, ymax: 1.05, xlabel: "distance Δ = m − n", ylabel: "cos(Δ·θ_i)", hlines: [{ at: 0, colour: "#888" }], aria: "cos of distance times theta for each pair, and their mean, against distance" });
  };
  pickable(angles.canvas, () => map, ({ row, col }) => {
    const d = panel._angles; if (!d) return;
    sel.pair = row; ctl(panel, "position").value = d.positions[col];
    panel.querySelector('output[data-for="position"]').textContent = fmtInt(d.positions[col]);
    loadRotation(); drawDecay(); loadQk();
  }, ({ row, col }) => { const d = panel._angles; return d && `pair ${row}, position ${d.positions[col]}: angle ${fmt(d.angles[row * d.positions.length + col], 3)} rad (mod 2π)${d.aliased[row] ? "; aliased at this zoom" : ""}`; });
  // Play: the cursor sweeps the range.
  const play = role(panel, "play");
  let timer = null;
  const stop = () => { clearInterval(timer); timer = null; play.textContent = "▶ play"; play.setAttribute("aria-pressed", "false"); };
  play.addEventListener("click", () => {
    if (timer) { stop(); return; }
    play.textContent = "❚❚ pause"; play.setAttribute("aria-pressed", "true");
    timer = setInterval(() => {
      const input = ctl(panel, "position");
      const max = Number(input.max);
      const step = Math.max(1, Math.round(max / 300));
      input.value = String((Number(input.value) + step) % (max + 1));
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }, 70);
  });
  const loadAll = () => { loadAngles(); loadRotation(); loadDecay(); loadCheck(); loadQk(); loadBound(); };
  ctl(panel, "position").addEventListener("input", loadRotation);
  for (const n of ["head_dim", "base"]) ctl(panel, n).addEventListener("input", () => { sel.pair = midPair(); loadAll(); });
  ctl(panel, "len").addEventListener("input", () => { loadAngles(); loadDecay(); loadBound(); });
  for (const n of ["m", "n"]) ctl(panel, n).addEventListener("input", loadCheck);
  ctl(panel, "s").addEventListener("input", () => { loadCheck(); loadQk(); });
  for (const n of ["qm", "qn"]) ctl(panel, n).addEventListener("input", loadQk);
  onResize(() => { loadAngles(); drawHands(); drawDecay(); if (panel._qk) drawQk2d(panel, panel._qk); if (panel._bound) drawBound(panel, panel._bound); });
  loadAll();
}

// ------------------------------------------------------------------ ALiBi

export function alibiPanel(panel) {
  const run = runner(panel);
  bindOutputs(panel, { heads: v => v, len: v => v });
  const sel = { head: 0, query: null };
  const maps = {};
  const views = Object.fromEntries(["bias", "mask", "w0", "w1"].map(n => [n, heatView(view(panel, n))]));
  const load = () => run("alibi", async fresh => {
    const heads = Number(ctl(panel, "heads").value);
    sel.head = Math.min(sel.head, heads - 1);
    const d = await api("alibi", { heads, len: ctl(panel, "len").value, head: sel.head, causal: ctl(panel, "causal").checked });
    if (!fresh()) return;
    panel._data = d; draw();
  });
  const pick = h => { sel.head = h; load(); };
  const draw = () => {
    const d = panel._data; if (!d) return;
    const L = d.len;
    const steepest = Math.max(...d.slopes);
    role(panel, "head-label").textContent = `head ${d.head}: slope ${fmt(d.slopes[d.head], 5)} (${fmt(steepest / d.slopes[d.head], 3)}× flatter than head 0)`;
    plot(fig(panel, "slopes"), {
      series: [{
        x: d.slopes.map((_, h) => h), y: d.slopes, kind: "bars", colours: d.slopes.map((_, h) => h === d.head ? "#d6336c" : "#1c5fb8"),
        titles: d.slopes.map((s, h) => `head ${h}: slope ${s}`),
        onBar: (r, h) => svgButton(r, `head ${h}, slope ${fmt(d.slopes[h], 5)}`, () => pick(h)),
      }],
      ylog: true, ymin: Math.min(...d.slopes) / 1.6, ymax: steepest * 1.6, xmin: -0.6, xmax: d.slopes.length - 0.4, xlabel: "head", ylabel: "slope (log)",
      aria: "ALiBi slope of each head on a log scale",
      onPick: x => pick(Math.max(0, Math.min(d.heads - 1, Math.round(x)))),
    });
    // One absolute scale for every head: the steepest head's largest bias.
    const floor = -steepest * Math.max(1, L - 1);
    const over = (ctx, g) => { if (sel.query !== null && sel.query < L) { ctx.strokeStyle = "#d6336c"; ctx.lineWidth = 2; ctx.strokeRect(0, sel.query * g.sy, g.w, g.sy); } };
    const axes = { x: { lo: 0, hi: L, cells: true, label: "key" }, y: { lo: 0, hi: L - 1, label: "query" } };
    const seqRev = SEQUENTIAL.slice().reverse();
    maps.bias = views.bias.draw({
      rows: L, cols: L, ...axes, overlay: over,
      colour: (r, c) => { const b = d.bias[r * L + c]; return b === null ? NO_VALUE : sequential(b / floor); },
      bar: { kind: "ramp", stops: seqRev, lo: floor, hi: 0, label: "bias (logits), all heads" },
      aria: `bias of head ${d.head}`,
    });
    maps.mask = views.mask.draw({
      rows: L, cols: L, ...axes, overlay: over,
      colour: (r, c) => d.mask[r * L + c] ? [255, 255, 255] : [40, 40, 48],
      bar: { kind: "swatches", swatches: [[[255, 255, 255], "visible"], [[40, 40, 48], "masked"]] },
      aria: "causal mask",
    });
    const wmax = Math.max(...d.weights_with_bias, ...d.weights_without_bias);
    for (const [k, w] of [["w0", d.weights_without_bias], ["w1", d.weights_with_bias]]) {
      maps[k] = views[k].draw({
        rows: L, cols: L, ...axes, overlay: over,
        colour: (r, c) => viridis(w[r * L + c] / wmax),
        bar: { kind: "ramp", stops: VIRIDIS, lo: 0, hi: wmax, label: "weight" },
        aria: `attention weights ${k === "w0" ? "without" : "with"} the bias`,
      });
    }
  };
  const alibiValue = { bias: (d, i) => d.bias[i], mask: (d, i) => (d.mask[i] ? "visible" : "masked"), w0: (d, i) => fmt(d.weights_without_bias[i], 4), w1: (d, i) => fmt(d.weights_with_bias[i], 4) };
  for (const name of ["bias", "mask", "w0", "w1"]) {
    pickable(views[name].canvas, () => maps[name], ({ row }) => { sel.query = row; draw(); },
      ({ row, col }) => { const d = panel._data; if (!d) return ""; const v = alibiValue[name](d, row * d.len + col); return `query ${row}, key ${col}: ${v === null ? "no bias (masked)" : typeof v === "number" ? fmt(v, 4) : v}`; });
  }
  panel.querySelectorAll(".controls input").forEach(e => e.addEventListener("input", load));
  onResize(draw);
  load();
}

// ------------------------------------------------------------------ long context

const BAND_COLOURS = { unchanged: "#2b8a3e", interpolated: "#1c5fb8", blended: "#e67700", rescaled: "#862e9c" };

export function longctxPanel(panel) {
  const run = runner(panel);
  bindOutputs(panel, { factor: v => `×${v}` });
  const maps = {};
  const sel = { pair: null };
  const views = { before: heatView(view(panel, "before")), after: heatView(view(panel, "after")) };
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
    const d = await api("longctx", { ...params(), width: columnsFor(views.before.canvas), round: 3 });
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
    const present = new Set(d.bands);
    plot(fig(panel, "wl"), {
      series: [
        { x: pairs, y: d.before.wavelength, kind: "line", colour: "#9aa5b8", width: 1.5, label: "before", dash: "4 3" },
        { x: pairs, y: d.after.wavelength, kind: "dots", colours: cols, r: 3.2 },
        ...[["unchanged", "unchanged (extrapolated)"], ["blended", "blended"], ["interpolated", `interpolated (÷${fmt(d.factor)})`], ["rescaled", "rescaled (base change / per-pair factors)"]]
          .filter(([b]) => present.has(b)).map(([b, label]) => ({ x: [], y: [], colour: BAND_COLOURS[b], label, kind: "dots" })),
      ],
      ylog: true, xlabel: `pair i (attention factor after scaling: ${fmt(d.after.attention_factor, 4)})`, ylabel: "wavelength (positions)",
      hlines: [{ at: d.train_len, colour: "#d6336c", label: `training length ${fmtInt(d.train_len)}` }, { at: d.target_len, colour: "#7048e8", label: `target ${fmtInt(d.target_len)}` }],
      vlines: sel.pair === null ? [] : [{ at: sel.pair, colour: "#000", label: `pair ${sel.pair}` }],
      onPick: x => { sel.pair = Math.max(0, Math.min(pairs.length - 1, Math.round(x))); draw(); },
    });
    const n = d.positions.length, P = pairs.length;
    const edge = nearestColumn(d.positions, d.train_len);
    const over = (ctx, g) => { vline(ctx, edge * g.sx, g.h, "#e03131", [6, 4]); if (sel.pair !== null) hline(ctx, g.y(sel.pair), g.w, "#e03131", [4, 3]); };
    for (const k of ["before", "after"]) {
      const a = k === "before" ? d.angles_before : d.angles_after;
      const aliased = k === "before" ? d.aliased_before : d.aliased_after;
      const nGrey = aliased.filter(Boolean).length;
      maps[k] = views[k].draw({
        rows: P, cols: n, colour: (r, c) => cyclic(a[r * n + c]), grey: r => aliased[r], overlay: over,
        x: { lo: 0, hi: d.target_len, label: "position", marks: [{ at: d.train_len, label: "train" }] },
        y: { lo: 0, hi: P - 1, label: "pair" },
        bar: { kind: "cyclic", label: "angle mod 2π" },
        greyNote: nGrey ? `${nGrey} grey: aliased` : "",
        aria: `angles ${k} scaling`,
      });
    }
  };
  for (const k of ["before", "after"]) {
    pickable(views[k].canvas, () => maps[k], ({ row }) => { sel.pair = row; draw(); }, ({ row, col }) => {
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
      box.innerHTML = "";
      const table = elem("table");
      for (const [k, v] of rows) { const tr = elem("tr"); tr.append(elem("td", k)); const td = elem("td"); td.appendChild(elem("b", v ?? "–")); tr.appendChild(td); table.appendChild(tr); }
      box.appendChild(table);
      if (d.warnings.length) d.warnings.forEach(w => box.appendChild(elem("div", `⚠ ${w}`, "warn")));
      else box.appendChild(elem("div", "no warnings"));
      const svg = el("svg", { "data-fig": "cfgwl", height: 160 });
      box.appendChild(svg);
      const det = elem("details"); det.open = true;
      det.append(elem("summary", `posenc inspect report (training context ${fmtInt(d.training_context)}, target ${fmtInt(d.target_context)})`), elem("pre", d.text, "inspect-text"));
      box.appendChild(det);
      plot(svg, { series: [{ x: d.wavelength.map((_, i) => i), y: d.wavelength, kind: "dots", colour: "#1c5fb8" }], ylog: true, xlabel: "pair", ylabel: "wavelength",
        hlines: trainLine.at ? [{ ...trainLine, colour: "#d6336c" }] : [] });
    } catch (e) {
      box.innerHTML = ""; box.appendChild(elem("div", `error: ${e.message}`, "warn"));
    }
  }, 0));
  onResize(draw);
  load(); loadBound();
}
