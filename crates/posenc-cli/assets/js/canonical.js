// The canonical pictures: PE·PE similarity, q and k rotating in 2-D, RoFormer's decay bound next
// to the Men et al. criterion, the four-token walk, NoPE's counting head (with the lab's measured
// curves), and one distance plot for every scheme.

import {
  api, runner, fig, role, ctl, fmt, fmtInt, elem, el, plot, bindOutputs, onResize, diverging,
  sequential, rgbCss, DIVERGING, seriesColours,
} from "./core.js";

// ------------------------------------------------------------------ sinusoidal similarity

export function drawSimilarity(panel, sim, d) {
  const L = d.positions.length;
  const map = sim.draw({
    rows: L, cols: L, colour: (r, c) => diverging(d.values[r * L + c]),
    x: { lo: d.positions[0], hi: d.positions[L - 1] + 1, label: "position j" },
    y: { labels: d.positions, label: "position i" },
    bar: { kind: "ramp", stops: DIVERGING, lo: -1, hi: 1, label: "PE(i)·PE(j) / PE·PE" },
    aria: `similarity of sinusoidal rows ${d.positions[0]} to ${d.positions[L - 1]}`,
  });
  role(panel, "sim-cap").textContent = `PE(p)·PE(p + Δ) / PE·PE against Δ, from p = ${fmtInt(d.positions[0])}: the same curve from any p (largest deviation over the matrix ${d.max_offset_deviation.toExponential(1)})`;
  plot(fig(panel, "sim-offset"), {
    series: [{ x: d.by_offset.map((_, i) => i), y: d.by_offset, colour: "#1c5fb8", label: `d = ${d.dim}, base ${fmtInt(d.base)}` }],
    ymin: -1.05, ymax: 1.05, xlabel: "offset Δ = j − i", ylabel: "similarity", hlines: [{ at: 0, colour: "#aaa" }],
  });
  return map;
}

// ------------------------------------------------------------------ q and k in 2-D

export function drawQk2d(panel, d) {
  const svg = fig(panel, "qk2d");
  svg.innerHTML = "";
  const W = Math.max(160, svg.clientWidth || 240);
  const H = Number(svg.getAttribute("height")) || 230;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `pair ${d.pair}: q at position ${d.m}, k at position ${d.n}, angle between them ${fmt(d.angle_between)} radians, q·k ${fmt(d.dot)}`);
  const scale = Math.max(Math.hypot(...d.q), Math.hypot(...d.k), 1e-9);
  const R = Math.min(W, H - 40) / 2 - 10;
  const cx = W / 2, cy = 18 + R + 4;
  el("circle", { cx, cy, r: R, fill: "none", stroke: "#d8dce3" }, svg);
  el("line", { x1: cx - R, x2: cx + R, y1: cy, y2: cy, stroke: "#eceef2" }, svg);
  el("line", { x1: cx, x2: cx, y1: cy - R, y2: cy + R, stroke: "#eceef2" }, svg);
  const defs = el("defs", {}, svg);
  for (const [id, c] of [["ahq", "#1c5fb8"], ["ahk", "#d6336c"]]) {
    const mk = el("marker", { id: `${id}${panel.id}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0L10,5L0,10z", fill: c }, mk);
  }
  const P = v => [cx + R * v[0] / scale, cy - R * v[1] / scale];
  const arrow = (v, colour, id, dash = "") => { const [x, y] = P(v); el("line", { x1: cx, y1: cy, x2: x, y2: y, stroke: colour, "stroke-width": 2.2, "marker-end": `url(#${id}${panel.id})`, "stroke-dasharray": dash }, svg); return [x, y]; };
  arrow(d.q, "#9bb7e0", "ahq", "3 3");
  arrow(d.k, "#efa3bd", "ahk", "3 3");
  const [qx, qy] = arrow(d.q_rot, "#1c5fb8", "ahq");
  const [kx, ky] = arrow(d.k_rot, "#d6336c", "ahk");
  // The angle from q to k, as an arc.
  const a0 = Math.atan2(d.q_rot[1], d.q_rot[0]);
  const a1 = a0 + d.angle_between;
  const r = R * 0.3;
  const pt = a => [cx + r * Math.cos(a), cy - r * Math.sin(a)];
  const [sx, sy] = pt(a0), [ex, ey] = pt(a1);
  el("path", { d: `M${sx},${sy} A${r},${r} 0 0 ${d.angle_between > 0 ? 0 : 1} ${ex},${ey}`, fill: "none", stroke: "#444", "stroke-width": 1.2 }, svg);
  const lab = (x, y, t, c) => el("text", { x, y, fill: c, "text-anchor": x > cx ? "start" : "end", class: "halo" }, svg).textContent = t;
  lab(qx + (qx > cx ? 4 : -4), qy, `q @ ${d.m}`, "#1c5fb8");
  lab(kx + (kx > cx ? 4 : -4), ky + (Math.abs(ky - qy) < 12 ? 12 : 0), `k @ ${d.n}`, "#d6336c");
  el("text", { x: 4, y: 12 }, svg).textContent = `θ = ${fmt(d.theta, 4)} rad/position`;
  role(panel, "qk-read").textContent = `angle from q to k: ${fmt(d.angle_between, 3)} rad; q·k = ${fmt(d.dot, 4)}. ` +
    `Both moved by s = ${fmtInt(d.s)}: q·k = ${fmt(d.dot_shifted, 4)}. Dashed: q and k before rotation.`;
  role(panel, "qk-cap").textContent = `one pair in 2-D (pair ${d.pair}, the selected one; wavelength ${fmt(d.wavelength, 1)} positions): q rotated to position m = ${d.m}, k to position n = ${d.n}; right: q·k against the offset n − m`;
  plot(fig(panel, "qk-curve"), {
    series: [{ x: d.offsets, y: d.dots, colour: "#1d2330", label: "q·k (same for every m)" }],
    xlabel: "offset n − m", ylabel: "q·k",
    vlines: [{ at: d.n - d.m, colour: "#d6336c", label: `n − m = ${d.n - d.m}` }],
    hlines: [{ at: 0, colour: "#aaa" }],
    aria: "q dot k of one pair against the offset",
  });
}

// ------------------------------------------------------------------ RoFormer bound and Men et al.

export function drawBound(panel, d) {
  const norm = d.bound[0];
  plot(fig(panel, "bound"), {
    series: [
      { x: d.distances, y: d.bound.map(v => v / norm), colour: "#1c5fb8", width: 2, label: "Su et al.: (1/(d/2)) Σ_j |S_j|, relative to distance 0" },
      { x: d.distances, y: d.criterion, colour: "#d6336c", width: 1.5, label: "Men et al.: B(m) / (d/2) = mean_i cos(m θ_i)" },
    ],
    ymin: -0.3, ymax: 1.05, xlabel: "relative distance m − n", ylabel: "relative value",
    hlines: [{ at: 0, colour: "#888" }],
    vlines: d.criterion_first_negative !== null && d.criterion_first_negative !== undefined ? [{ at: d.criterion_first_negative, colour: "#d6336c", dash: "4 3", label: `B first < 0 at ${fmtInt(d.criterion_first_negative)}` }] : [],
    aria: "RoFormer decay bound and Men et al. criterion against distance",
  });
  role(panel, "bound-note").textContent = `Head dim ${d.head_dim}, base ${fmtInt(d.base)}. Su et al. bound |q·k| by max|h_{i+1} − h_i| · Σ_j |S_j| with S_j = Σ_{i<j} e^{i(m−n)θ_i}: ` +
    `the bound (blue, ${fmt(norm, 4)} at distance 0) decays with ripples, so far tokens can score less, but it never forces them to. ` +
    `Men et al. ask for more: B(m) = Σ_i cos(mθ_i) ≥ 0 at every distance below the context, so that a key similar to the query always scores above a random one. ` +
    (d.criterion_first_negative !== null && d.criterion_first_negative !== undefined ? `Here B first turns negative at distance ${fmtInt(d.criterion_first_negative)}: a base this small cannot serve a context that long.` : `Here B stays ≥ 0 over the whole range.`);
}

// ------------------------------------------------------------------ the four-token walk

function valueTable(m, kind) {
  const t = elem("table", null, "nums walk-table");
  const cap = elem("caption", m.name);
  t.appendChild(cap);
  const head = elem("tr");
  head.appendChild(elem("th"));
  m.column_labels.forEach(l => { const th = elem("th", l); th.scope = "col"; head.appendChild(th); });
  t.appendChild(head);
  const flat = m.rows.flat();
  const maxAbs = Math.max(1e-9, ...flat.map(Math.abs));
  m.rows.forEach((row, i) => {
    const tr = elem("tr");
    const th = elem("th", m.row_labels[i]); th.scope = "row"; tr.appendChild(th);
    row.forEach(v => {
      const td = elem("td", Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
      const c = kind === "weights" ? sequential(v) : diverging(v, maxAbs);
      td.style.background = rgbCss(c);
      const light = (c[0] * 299 + c[1] * 587 + c[2] * 114) / 1000 < 110;
      if (light) td.style.color = "#fff";
      tr.appendChild(td);
    });
    t.appendChild(tr);
  });
  return t;
}

export function walkPanel(panel) {
  const run = runner(panel);
  const host = fig(panel, "stages");
  const load = () => run("walk", async fresh => {
    const d = await api("walk", { scheme: ctl(panel, "scheme").value });
    if (!fresh()) return;
    host.innerHTML = "";
    role(panel, "walk-cap").textContent = `tokens ${d.tokens.map(t => `"${t}"`).join(", ")}; ${d.scheme}: position ${d.entry_text}${d.entry === "nowhere" ? "" : " (the outlined step)"}`;
    d.stages.forEach((s, i) => {
      const card = elem("div", null, `walk-stage${s.scheme_enters ? " enters" : ""}${s.matrices.length ? "" : " empty"}`);
      card.dataset.step = s.step;
      card.append(elem("h4", s.title), elem("p", s.text));
      if (s.scheme_enters) card.appendChild(elem("div", "position enters here", "badge"));
      const tables = elem("div", null, "walk-tables");
      s.matrices.forEach(m => tables.appendChild(valueTable(m, s.step === "softmax" ? "weights" : "values")));
      card.appendChild(tables);
      host.appendChild(card);
      if (i + 1 < d.stages.length) host.appendChild(elem("div", "→", "walk-arrow"));
    });
  });
  ctl(panel, "scheme").addEventListener("input", load);
  load();
}

// ------------------------------------------------------------------ NoPE

export function nopePanel(panel) {
  const run = runner(panel);
  bindOutputs(panel, { len: v => v });
  const load = () => run("counting", async fresh => {
    const d = await api("nope/counting", { len: ctl(panel, "len").value });
    if (!fresh()) return;
    panel._count = d; draw();
  });
  const draw = () => {
    const d = panel._count; if (!d) return;
    const x = d.visible_keys.map((_, i) => i);
    plot(fig(panel, "count"), {
      series: [
        { x, y: d.visible_keys, kind: "bars", colour: "#d8dce3", label: "keys visible (causal mask)" },
        { x, y: d.position_read, colour: "#1c5fb8", width: 2, label: "position read back: 1/output − 1" },
        { x, y: d.causal_output.map(v => v * (d.len - 1)), colour: "#d6336c", width: 1.6, label: `causal output 1/(i+1), ×${d.len - 1}` },
        { x, y: d.bidirectional_output.map(v => v * (d.len - 1)), colour: "#888", dash: "5 3", width: 1.6, label: `no mask: output ${fmt(d.bidirectional_output[0], 4)} everywhere, ×${d.len - 1}` },
      ],
      ymin: 0, xmin: -0.6, xmax: d.len - 0.4, xlabel: "query position i", ylabel: "positions",
      aria: "keys visible per query, the counting head's output, and the position read back from it",
    });
  };
  const lab = fig(panel, "lab");
  const loadLab = () => run("lab", async () => {
    const d = await api("lab");
    lab.innerHTML = "";
    if (!d.groups.length) {
      const note = elem("div", null, "hint");
      note.dataset.role = "lab-missing";
      note.textContent = `No posenc lab results in ${d.lab_dir} yet${d.unreadable.length ? ` (unreadable: ${d.unreadable.join(", ")})` : ""}. ` +
        `Train the small models and measure them with:\n  ${d.how_to_produce}\nthen reload this page (or point posenc serve --lab DIR at the results).`;
      lab.appendChild(note);
      return;
    }
    lab.appendChild(elem("div", `From ${d.files.length} file(s) in ${d.lab_dir}: mean over seeds (band: min to max).`, "source"));
    const grid = elem("div", null, "figures");
    lab.appendChild(grid);
    // One plot per task, its main metric (exact match for the tasks, perplexity for text).
    for (const g of d.groups.filter(x => x.primary)) {
      const f = elem("figure");
      f.appendChild(elem("figcaption", `${g.task}: ${g.metric.replace(/_/g, " ")} against test length${g.train_len ? ` (trained on ${fmtInt(g.train_len)})` : ""}`));
      const svg = el("svg", { height: 220, "data-fig": `lab-${g.task}-${g.metric}` });
      f.appendChild(svg);
      grid.appendChild(f);
      const colours = seriesColours(g.curves.length);
      const series = [];
      g.curves.forEach((c, i) => {
        const colour = c.scheme === "nope" ? "#d6336c" : colours[i];
        if (c.count.some(n => n > 1)) series.push({ x: c.lengths, y: c.min, y2: c.max, kind: "band", colour });
        series.push({ x: c.lengths, y: c.mean, colour, width: c.scheme === "nope" ? 2.6 : 1.8, label: c.scheme });
      });
      const lengths = [...new Set(g.curves.flatMap(c => c.lengths))].sort((a, b) => a - b);
      const draw = () => plot(svg, { series, xlog: lengths[0] > 0, xticks: lengths, xlabel: "test length", ylabel: g.metric.replace(/_/g, " "),
        vlines: g.train_len ? [{ at: g.train_len, colour: "#555", dash: "5 3", label: "training length" }] : [] });
      draw(); onResize(draw);
    }
  }, 0);
  ctl(panel, "len").addEventListener("input", load);
  onResize(draw);
  load(); loadLab();
}

// ------------------------------------------------------------------ distance, every scheme

const SCHEME_COLOURS = { nope: "#868e96", t5: "#e67700", rope: "#111827", sinusoidal: "#d6336c" };

export function comparePanel(panel) {
  const run = runner(panel);
  bindOutputs(panel, { heads: v => v });
  const load = () => run("distance", async fresh => {
    const d = await api("compare/distance", { max_distance: ctl(panel, "max_distance").value, heads: ctl(panel, "heads").value, head_dim: ctl(panel, "head_dim").value, base: ctl(panel, "base").value, points: 400 });
    if (!fresh()) return;
    panel._data = d; draw();
  });
  const draw = () => {
    const d = panel._data; if (!d) return;
    const logx = ctl(panel, "logx").checked;
    const keep = d.distances.map((x, i) => (!logx || x >= 1 ? i : -1)).filter(i => i >= 0);
    const xs = keep.map(i => d.distances[i]);
    const alibi = d.curves.filter(c => c.scheme === "alibi");
    const blues = alibi.map((_, i) => rgbCss([Math.round(28 + 150 * i / Math.max(1, alibi.length - 1)), Math.round(95 + 110 * i / Math.max(1, alibi.length - 1)), Math.round(184 + 50 * i / Math.max(1, alibi.length - 1))]));
    const series = [];
    d.curves.forEach(c => {
      const y = keep.map(i => Math.max(-12.5, c.values[i]));
      if (c.scheme === "alibi") {
        const k = alibi.indexOf(c);
        const labelled = k === 0 || k === alibi.length - 1;
        series.push({ x: xs, y, colour: blues[k], width: 1.4, label: labelled ? c.label : undefined });
      } else {
        series.push({ x: xs, y, colour: SCHEME_COLOURS[c.scheme], width: c.scheme === "sinusoidal" ? 1.6 : 2, dash: c.scheme === "sinusoidal" ? "6 4" : "", label: c.label, kind: c.scheme === "t5" ? "step" : undefined });
      }
    });
    const ymax = Math.min(6, Math.max(1, ...d.curves.flatMap(c => c.values)));
    plot(fig(panel, "profile"), {
      series, ymin: -12, ymax: ymax + 0.5, xlog: logx, xlabel: "distance Δ (key Δ tokens before the query)", ylabel: "score(Δ) − score(0), logits",
      vlines: [{ at: d.t5.max_distance, colour: "#e67700", dash: "3 3", label: "T5 max_distance" }],
      hlines: [{ at: 0, colour: "#aaa" }],
      aria: "score change against distance for NoPE, ALiBi heads, T5, RoPE and sinusoidal",
    });
    const ul = role(panel, "conventions");
    ul.innerHTML = "";
    d.conventions.forEach(t => ul.appendChild(elem("li", t)));
  };
  panel.querySelectorAll(".controls select, .controls input").forEach(e => e.addEventListener("input", e.name === "logx" ? draw : load));
  onResize(draw);
  load();
}
