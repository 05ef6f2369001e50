// The real-model panel: `posenc model` result files (passkey, perplexity, attention statistics),
// from the results directory or the committed measurements, each chart behind a prediction
// whose answer explains what the measurement shows.

import { api, runner, role, fmt, elem, el, plot, heatView, pickable, hline, onResize, viridis, VIRIDIS, NO_VALUE } from "./core.js";
import { attachPredictions } from "./course.js";

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

/** "Try: ..." text for one chart. */
function tryText(parent, text) {
  const p = elem("p", null, "try-predict");
  p.append(elem("b", "Try: "), document.createTextNode(text));
  parent.appendChild(p);
  return p;
}

/** Where a result came from, and how to make your own. */
function resultSource(box, r) {
  box.appendChild(elem("div", r.source === "committed"
    ? `Measured results committed in the repository (${r.committed}; see results/README.md). Your own run: ${r.how_to_produce}`
    : `From ${r.file}.` + (r.how_to_produce ? ` Produced by: ${r.how_to_produce}` : ""), "source"));
}

/** A labelled heatmap (rows × columns) with axes outside the cells and a colour bar. */
function labelledHeatmap(f, rows, opts) {
  const host = elem("div");
  host.dataset.view = opts.name || "result";
  host.dataset.height = opts.height || 220;
  f.appendChild(host);
  const hv = heatView(host);
  const vals = rows.flat().filter(v => typeof v === "number" && Number.isFinite(v));
  const lo = opts.lo ?? Math.min(...vals), hi = opts.hi ?? Math.max(...vals);
  const nr = rows.length, nc = Math.max(...rows.map(r => r.length));
  let map = null;
  let selected = null;
  const redraw = (sel = selected) => {
    selected = sel;
    map = hv.draw({
      rows: nr, cols: nc,
      colour: (r, k) => { const v = rows[r][k]; return typeof v === "number" && Number.isFinite(v) ? viridis((v - lo) / Math.max(1e-12, hi - lo)) : NO_VALUE; },
      overlay: (ctx, g) => {
        if (opts.annotate !== undefined && g.sx >= 34 && g.sy >= 14) {
          ctx.font = "11px system-ui"; ctx.textAlign = "center";
          for (let r = 0; r < nr; r++) for (let k = 0; k < rows[r].length; k++) {
            const v = rows[r][k]; if (typeof v !== "number") continue;
            const t = (v - lo) / Math.max(1e-12, hi - lo);
            ctx.fillStyle = t > 0.6 ? "#111" : "#fff";
            ctx.fillText(v.toFixed(opts.annotate), g.x(k), g.y(r) + 4);
          }
        }
        if (opts.boundaryRow !== undefined && opts.boundaryRow > 0 && opts.boundaryRow < nr) hline(ctx, opts.boundaryRow * g.sy, g.w, "#d6336c", [5, 3]);
        if (selected) {
          ctx.save(); ctx.strokeStyle = "#d6336c"; ctx.lineWidth = 2.5;
          if (selected.row !== undefined && selected.col !== undefined) ctx.strokeRect(selected.col * g.sx + 1, selected.row * g.sy + 1, g.sx - 2, g.sy - 2);
          else if (selected.row !== undefined) ctx.strokeRect(1, selected.row * g.sy + 1, g.w - 2, g.sy - 2);
          ctx.restore();
        }
      },
      x: { labels: opts.colLabels || [...Array(nc).keys()], label: opts.xlabel },
      y: { labels: opts.rowLabels || [...Array(nr).keys()], label: opts.ylabel },
      bar: { kind: "ramp", stops: VIRIDIS, lo, hi, label: opts.barLabel || "value" },
      aria: opts.aria,
    });
  };
  redraw(); onResize(() => redraw());
  pickable(hv.canvas, () => map, opts.onPick, opts.describe);
  return { canvas: hv.canvas, redraw, lo, hi };
}

function renderPasskey(box, data, name) {
  const grid = elem("div", null, "figures"); box.appendChild(grid);
  const f = elem("figure"); grid.appendChild(f);
  f.dataset.predict = name === "passkey-yarn" ? "model-yarn-window" : "model-passkey-depth";
  f.appendChild(elem("figcaption", `passkey accuracy, ${data.lengths.length} lengths × ${data.depths.length} depths; RoPE scaling: ${data.scaling}; ${data.trials} trial${data.trials === 1 ? "" : "s"} per cell; dashed line: training context ${data.context_length}`));
  const cellAt = (r, k) => (data.cells || []).find(c => c.length === data.lengths[r] && c.depth === data.depths[k]);
  const readout = elem("div", "Click a cell (or focus the map and use the arrow keys) to see the passkeys, the model's answers and the prompt sizes.", "readout");
  const boundary = data.lengths.findIndex(l => l > data.context_length);
  const hm = labelledHeatmap(f, data.accuracy, {
    name: `${name}-map`, lo: 0, hi: 1, annotate: 2, height: Math.min(320, 40 + 34 * data.lengths.length),
    rowLabels: data.lengths, colLabels: data.depths.map(d => `depth ${d}`), boundaryRow: boundary < 0 ? undefined : boundary,
    xlabel: "needle depth (0 = start, 1 = end)", ylabel: "length", barLabel: "accuracy",
    aria: `passkey accuracy by context length and needle depth, scaling ${data.scaling}`,
    describe: ({ row, col }) => `length ${data.lengths[row]}, depth ${data.depths[col]}: accuracy ${fmt(data.accuracy[row][col])}`,
    onPick: ({ row, col }) => {
      hm.redraw({ row, col });
      const cell = cellAt(row, col);
      readout.textContent = `length ${data.lengths[row]}, depth ${data.depths[col]}: accuracy ${fmt(data.accuracy[row][col])}` +
        (cell ? " — " + cell.trials.map(t => `key ${t.passkey} → ${t.answer ?? "no number"} (${t.prompt_tokens} tokens, generated ${JSON.stringify(t.generated)})`).join("; ") : "");
    },
  });
  f.appendChild(readout);
  const past = data.lengths.some(l => l > data.context_length);
  tryText(f, "click cells down one column (same needle depth, longer context) and read the model's actual answers." +
    (past ? " Compare the rows below the dashed line (past the training context) with the unscaled file." : " Then open the YaRN file and compare its rows past 8192."));
}

const SCALING_COLOURS = ["#111827", "#1c5fb8", "#d97706", "#059669", "#d6336c", "#7c3aed", "#0891b2", "#65a30d"];

function renderPerplexity(box, data) {
  const grid = elem("div", null, "figures"); box.appendChild(grid);
  const readout = elem("div", "", "readout");
  let picked = null;
  const charts = [];
  const draw = () => charts.forEach(({ svg, table }) => plot(svg, {
    series: data.scalings.map((name, i) => ({ x: data.lengths, y: table[i], colour: SCALING_COLOURS[i % SCALING_COLOURS.length], label: name, width: 2 })),
    xlog: true, ylog: true, xticks: data.lengths, xtickFormat: v => String(v), xlabel: "context length (tokens)", ylabel: "perplexity",
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
  const figs = [];
  for (const [title, table] of [["whole window: every prediction with up to L tokens of context", data.ppl], [`last ${data.tail} predictions of each window (≈ L tokens of context)`, data.tail_ppl]]) {
    const f = elem("figure"); grid.appendChild(f);
    f.appendChild(elem("figcaption", `perplexity vs context length, ${title}`));
    const svg = el("svg", { height: 240, class: "plot" }); f.appendChild(svg);
    charts.push({ svg, table });
    figs.push(f);
  }
  figs[0].parentNode.dataset.predict = "model-linear-cost";
  box.appendChild(readout);
  readout.textContent = `Text: ${data.source}, ${data.text_tokens} tokens, ${data.window_starts.length} window(s). Click a chart to read every scaling at one length.`;
  draw(); onResize(draw);
  figs.forEach(f => tryText(f, "click the chart at 16K and compare the scalings; then at 1K, where no scaling is needed."));
}

function renderAttentionStats(box, data) {
  const grid = elem("div", null, "figures quad"); box.appendChild(grid);
  grid.dataset.predict = "model-sink";
  const readout = elem("div", "", "readout");
  const maps = [
    ["entropy", `entropy (nats; uniform ${fmt(data.uniform_entropy)})`, data.entropy, 1, "nats"],
    ["mean_distance", `mean attended distance (tokens; uniform ${fmt(data.uniform_mean_distance)})`, data.mean_distance, 0, "tokens"],
    ["first_token_weight", "weight on the first token (attention sink)", data.first_token_weight, 2, "weight"],
    ["mean_distance_after_first", "mean distance over the keys after the first (tokens)", data.mean_distance_after_first, 0, "tokens"],
  ];
  const views = [];
  let distView = null;
  const detailSvg = el("svg", { height: 170, class: "plot" });
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
  for (const [key, title, rows, digits, unit] of maps) {
    const f = elem("figure"); grid.appendChild(f);
    f.dataset.stat = key;
    f.appendChild(elem("figcaption", title));
    views.push(labelledHeatmap(f, rows, { name: `stat-${key}`, annotate: digits, height: 372, rowLabels: data.layers, colLabels: data.heads,
      xlabel: "head", ylabel: "layer", barLabel: unit, aria: `${title}, layer by head`,
      describe: ({ row, col }) => `layer ${data.layers[row]} head ${data.heads[col]}: ${fmt(rows[row][col])}`, onPick: select }));
  }
  const explain = {
    entropy: "click a low-entropy cell, then find the same head on the other three maps.",
    mean_distance: "compare early layers (top) with late layers; hover for exact values.",
    first_token_weight: "find the layers where most heads are bright.",
    mean_distance_after_first: "click a head whose first-token weight is high and read its distance here.",
  };
  grid.querySelectorAll("figure").forEach(f => tryText(f, explain[f.dataset.stat]));
  const f2 = elem("figure"); grid.appendChild(f2);
  f2.appendChild(elem("figcaption", `attention weight by distance (mean over the heads of each layer); columns: ${data.distance_bins.join(", ")} tokens`));
  distView = labelledHeatmap(f2, data.distance_mass_by_layer, { name: "stat-distance", lo: 0, height: 372, rowLabels: data.layers, colLabels: data.distance_bins,
    xlabel: "distance bin (tokens)", ylabel: "layer", barLabel: "weight", aria: "attention weight by distance, per layer",
    describe: ({ row, col }) => `layer ${data.layers[row]}, distance ${data.distance_bins[col]}: weight ${fmt(data.distance_mass_by_layer[row][col])}`,
    onPick: ({ row }) => select({ row, col: sel ? sel.col : 0 }) });
  tryText(f2, "click a layer row; the selected head's own histogram is drawn below.");
  const f3 = elem("figure"); grid.appendChild(f3);
  f3.append(elem("figcaption", "the selected head's attention weight by distance bin"), detailSvg);
  tryText(f3, "pick a head in layer 0, then one in the last layer: which spreads its weight over more distance bins?");
  box.appendChild(readout);
  box.appendChild(elem("div", `${data.tokens} tokens of ${data.source}; queries from ${data.query_from}; RoPE scaling ${data.scaling}.`, "source"));
  select({ row: 0, col: 0 });
  onResize(() => { if (sel) select(sel); });
}

function renderGeneric(box, data) {
  const mats = findMatrices(data);
  if (!mats.length) { box.appendChild(document.createTextNode("(no 2-D tables of numbers found in this file)")); return; }
  const grid = elem("div", null, "figures"); box.appendChild(grid);
  for (const m of mats) {
    const f = elem("figure");
    const cap = elem("figcaption", `${m.path}: ${m.rows.length} × ${m.rows[0].length}` + (m.rowLabels ? `; rows: ${m.rowLabels[0]}` : "") + (m.colLabels ? `; columns: ${m.colLabels[0]}` : ""));
    f.appendChild(cap); grid.appendChild(f);
    labelledHeatmap(f, m.rows, { height: 200, rowLabels: m.rowLabels && m.rowLabels[1], colLabels: m.colLabels && m.colLabels[1], xlabel: m.colLabels ? m.colLabels[0] : "column", ylabel: m.rowLabels ? m.rowLabels[0] : "row", aria: m.path });
    tryText(f, "hover the cells and compare rows.");
  }
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

export function modelPanel(panel) {
  const body = role(panel, "body");
  const run = runner(panel);
  run("results", async () => {
    const idx = await api("results");
    body.innerHTML = "";
    for (const r of idx.results) {
      const box = elem("div", null, "result"); box.dataset.result = r.name;
      box.appendChild(elem("h3", RESULT_TITLES[r.name] || r.name));
      body.appendChild(box);
      if (!r.source) {
        box.appendChild(elem("div", `No ${r.file} yet. Produce it with:\n  ${r.how_to_produce}\nthen reload this page.`, "hint"));
        continue;
      }
      resultSource(box, r);
      try {
        const data = await api(`results/${encodeURIComponent(r.name)}`);
        resultRenderer(data)(box, data, r.name);
      } catch (e) {
        box.appendChild(document.createTextNode(`cannot load: ${e.message}`));
      }
    }
    await attachPredictions(body);
  }, 0);
}
