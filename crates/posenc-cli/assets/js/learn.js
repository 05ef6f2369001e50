// The exercises panel: instances, answer checks (by the server), walkthroughs and the advisor.
// The score is kept with the predictions' in localStorage, so it survives a reload.

import { api, runner, role, ctl, fmtInt, elem } from "./core.js";
import { progress, save, onScore } from "./course.js";

/** A number as given (integers whole, others with up to 6 significant digits). */
function numStr(x) {
  if (typeof x === "boolean") return x ? "yes" : "no";
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
    colLabels.forEach(l => { const th = elem("th", l); th.scope = "col"; tr.appendChild(th); });
    t.appendChild(tr);
  }
  rows.forEach((row, i) => {
    const tr = elem("tr");
    if (showRows) { const th = elem("th", rowLabels[i] ?? i); th.scope = "row"; tr.appendChild(th); }
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

export function learnPanel(panel) {
  const run = runner(panel);
  const score = progress.exercises;
  let current = null; // the instance on screen
  const showScore = () => {
    role(panel, "score").textContent = `score: ${score.right} right of ${score.checks} checks · parts solved: ${score.solved.length}`;
  };
  onScore(showScore);
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
      list.setAttribute("role", "radiogroup");
      list.setAttribute("aria-label", `part ${p.part}`);
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
      input.setAttribute("aria-label", `answer to part ${p.part}`);
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
    verdict.setAttribute("aria-live", "polite");
    box.append(button, verdict);
    const check = () => run(`check ${p.part}`, async () => {
      const answer = read();
      if (answer === null) { renderVerdict(verdict, null, "pick an option first"); return; }
      const key = `${inst.exercise}:${inst.seed}:${p.part}`;
      try {
        const v = await api("learn/check", {}, JSON.stringify({ n: inst.exercise, seed: inst.seed, part: p.part, answer }));
        if (current !== inst) return; // the exercise changed meanwhile
        score.checks += 1;
        if (v.correct) { score.right += 1; if (!score.solved.includes(key)) score.solved.push(key); }
        save();
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
    const a = await api("learn/advise", { train_len: f("train_len").value, target_len: f("target_len").value, head_dim: f("head_dim").value, arch: f("arch").value, kv_cache: f("kv_cache").checked, retrieval: f("retrieval").checked });
    if (!fresh()) return;
    const host = role(panel, "advice");
    host.innerHTML = "";
    host.appendChild(elem("p", a.summary, "summary"));
    const r = a.request;
    host.appendChild(elem("p", `Assumed: ${r.arch}, head size ${r.head_dim}, KV cache: ${r.kv_cache ? "yes" : "no"}, long-range retrieval: ${r.retrieval ? "yes" : "no"}.`, "muted"));
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
    const reason = x => { const li = elem("li"); li.append(elem("b", `${x.topic}: `), elem("span", x.text)); return li; };
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
    if (sel.dataset.pending) { sel.value = sel.dataset.pending; delete sel.dataset.pending; }
    const tsel = ctl(panel, "topic");
    for (const t of topics.topics) { const o = elem("option", t); o.value = t; tsel.appendChild(o); }
    if (tsel.dataset.pending) { tsel.value = tsel.dataset.pending; delete tsel.dataset.pending; }
    load(); loadWalkthrough();
  }, 0);
  ctl(panel, "exercise").addEventListener("input", load);
  ctl(panel, "seed").addEventListener("input", load);
  role(panel, "new-seed").addEventListener("click", () => {
    const s = ctl(panel, "seed");
    s.value = Math.floor(Math.random() * 1e6);
    s.dispatchEvent(new Event("input", { bubbles: true }));
  });
  ctl(panel, "topic").addEventListener("input", loadWalkthrough);
  form.addEventListener("submit", ev => { ev.preventDefault(); advise(); });
  form.querySelectorAll("select, input[type=checkbox]").forEach(e => e.addEventListener("input", advise));
  advise();
}
