// The course around the panels: predict-then-reveal questions (scored by the server, kept in
// localStorage), the guided path in course order, and URL state (every control that differs
// from its default is written to the query string, so a setting can be shared as a link).

import { api, elem } from "./core.js";

// ------------------------------------------------------------------ stored progress

const KEY = "posenc-explorer-v1";

function load() {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) || "{}");
    return { predictions: v.predictions || {}, exercises: v.exercises || { checks: 0, right: 0, solved: [] } };
  } catch (e) {
    return { predictions: {}, exercises: { checks: 0, right: 0, solved: [] } };
  }
}
export const progress = load();
export function save() {
  try { localStorage.setItem(KEY, JSON.stringify(progress)); } catch (e) { /* private mode: progress lasts the visit */ }
  scoreListeners.forEach(f => f());
}
const scoreListeners = [];
export function onScore(f) { scoreListeners.push(f); f(); }
/** Forgets every answer (the "reset" button). */
export function resetProgress() {
  progress.predictions = {};
  progress.exercises = { checks: 0, right: 0, solved: [] };
  save();
  location.reload();
}

// ------------------------------------------------------------------ predict, then reveal

let listPromise = null;
function predictionList() {
  if (!listPromise) listPromise = api("learn/predictions").then(d => d.predictions);
  return listPromise;
}
export let predictionCount = 0;

function renderVerdict(box, v) {
  box.innerHTML = "";
  box.className = `predict-verdict ${v.correct ? "right" : v.skipped ? "skipped" : "wrong"}`;
  const head = v.skipped ? "Skipped." : v.correct ? `✓ Right (${v.choice}).` : `✗ Not quite: you said ${v.choice}, the answer is ${v.answer}.`;
  box.append(elem("b", head), elem("span", ` ${v.explanation}`));
}

/**
 * Puts each prediction whose figure is inside `root` (a `[data-predict=ID]` element) behind its
 * question: the figure is veiled until the learner picks an option (or skips); the server grades
 * the choice and sends the explanation.
 */
export async function attachPredictions(root = document) {
  const list = await predictionList();
  predictionCount = list.length;
  for (const target of root.querySelectorAll("[data-predict]")) {
    if (target.dataset.predictReady) continue;
    const p = list.find(x => x.id === target.dataset.predict);
    if (!p) continue;
    target.dataset.predictReady = "1";
    const box = elem("div", null, "predict");
    box.dataset.prediction = p.id;
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", `Prediction: ${p.question}`);
    box.append(elem("b", "Predict first: "), elem("span", p.question));
    const opts = elem("div", null, "predict-options");
    const verdict = elem("div", null, "predict-verdict");
    verdict.setAttribute("aria-live", "polite");
    // The figure's own content (everything but this box) is veiled until the learner answers.
    const content = () => [...target.children].filter(c => c !== box);
    const reveal = () => { target.classList.remove("veiled"); content().forEach(c => { c.removeAttribute("aria-hidden"); c.inert = false; }); };
    const answer = async choice => {
      opts.querySelectorAll("button").forEach(b => { b.disabled = true; });
      try {
        const v = await api("learn/predict", {}, JSON.stringify({ id: p.id, choice }));
        progress.predictions[p.id] = { choice: v.choice, correct: v.correct, answer: v.answer, explanation: v.explanation };
        save();
        markChoice(v.choice, v.answer);
        renderVerdict(verdict, v);
      } catch (e) {
        opts.querySelectorAll("button").forEach(b => { b.disabled = false; });
        verdict.className = "predict-verdict wrong"; verdict.textContent = `cannot check: ${e.message}`;
        return;
      }
      reveal();
    };
    const markChoice = (choice, right) => opts.querySelectorAll("button").forEach(b => {
      b.disabled = true;
      if (!b.dataset.key) return; // "show me without predicting"
      b.classList.toggle("chosen", b.dataset.key === choice);
      b.classList.toggle("answer", b.dataset.key === right);
    });
    for (const o of p.options) {
      const b = elem("button", null, "predict-option");
      b.type = "button"; b.dataset.key = o.key;
      b.append(elem("b", `${o.key}. `), elem("span", o.text));
      b.addEventListener("click", () => answer(o.key));
      opts.appendChild(b);
    }
    const skip = elem("button", "show me without predicting", "predict-skip");
    skip.type = "button";
    skip.addEventListener("click", () => {
      progress.predictions[p.id] = { skipped: true };
      save();
      opts.querySelectorAll("button").forEach(b => { b.disabled = true; });
      verdict.className = "predict-verdict skipped"; verdict.textContent = "Skipped: answer later to score it (reset the score to ask again).";
      reveal();
    });
    opts.appendChild(skip);
    box.append(opts, verdict);
    target.insertBefore(box, target.firstChild);
    const done = progress.predictions[p.id];
    if (done && !done.skipped) {
      markChoice(done.choice, done.answer);
      renderVerdict(verdict, { ...done, id: p.id });
    } else if (done && done.skipped) {
      opts.querySelectorAll("button").forEach(b => { b.disabled = true; });
      verdict.className = "predict-verdict skipped"; verdict.textContent = "Skipped earlier.";
    } else {
      target.classList.add("veiled");
      content().forEach(c => { c.setAttribute("aria-hidden", "true"); c.inert = true; });
    }
  }
  save();
}

// ------------------------------------------------------------------ guided path

/** The course order: panel ids with short titles. */
export const COURSE = [
  ["why", "Why position"], ["walk", "Four-token walk"], ["sinusoidal", "Sinusoidal"], ["learned", "Learned"],
  ["relative", "Relative"], ["rope", "RoPE"], ["alibi", "ALiBi"], ["nope", "NoPE"], ["compare", "Distance, all schemes"],
  ["longctx", "Long context"], ["model", "Real model"], ["learn", "Exercises"],
];

/** Step badges, previous/next links at each panel's end, and the progress bar in the header. */
export function guidedPath() {
  const bar = document.querySelector("[data-role=course]");
  COURSE.forEach(([id, title], i) => {
    const panel = document.getElementById(id);
    if (!panel) return;
    const h2 = panel.querySelector("h2");
    if (h2 && !h2.querySelector(".step")) h2.prepend(elem("span", `${i + 1}`, "step"));
    const nav = elem("nav", null, "next-step");
    nav.setAttribute("aria-label", `course: after ${title}`);
    if (i > 0) { const a = elem("a", `← ${i}. ${COURSE[i - 1][1]}`); a.href = `#${COURSE[i - 1][0]}`; nav.appendChild(a); }
    if (i + 1 < COURSE.length) { const a = elem("a", `next: ${i + 2}. ${COURSE[i + 1][1]} →`, "next"); a.href = `#${COURSE[i + 1][0]}`; nav.appendChild(a); }
    panel.appendChild(nav);
  });
  if (!bar) return;
  const list = elem("ol", null, "course-steps");
  COURSE.forEach(([id, title]) => {
    const li = elem("li");
    const a = elem("a", title);
    a.href = `#${id}`;
    a.dataset.step = id;
    li.appendChild(a);
    list.appendChild(li);
  });
  const score = elem("span", "", "course-score");
  score.dataset.role = "course-score";
  const reset = elem("button", "reset score", "reset");
  reset.type = "button";
  reset.addEventListener("click", resetProgress);
  bar.append(list, score, reset);
  onScore(() => {
    const answered = Object.values(progress.predictions).filter(p => !p.skipped);
    const right = answered.filter(p => p.correct).length;
    const ex = progress.exercises;
    score.textContent = `predictions: ${right} right of ${answered.length} answered` + (predictionCount ? ` (${predictionCount} in all)` : "") +
      ` · exercises: ${ex.right} right of ${ex.checks} checks`;
    for (const a of list.querySelectorAll("a[data-step]")) {
      const panel = document.getElementById(a.dataset.step);
      const ids = panel ? [...panel.querySelectorAll("[data-predict]")].map(t => t.dataset.predict) : [];
      const done = ids.length > 0 && ids.every(id => progress.predictions[id]);
      a.classList.toggle("done", done);
    }
  });
  // The step in view is marked current.
  const seen = new IntersectionObserver(entries => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      list.querySelectorAll("a").forEach(a => a.classList.toggle("current", a.dataset.step === e.target.id));
    }
  }, { rootMargin: "-40% 0px -55% 0px" });
  COURSE.forEach(([id]) => { const p = document.getElementById(id); if (p) seen.observe(p); });
}

// ------------------------------------------------------------------ URL state

function controls() {
  return [...document.querySelectorAll("[data-panel] .controls [name]")].filter(e => !e.closest("[data-no-url]"));
}
function keyOf(e) { return `${e.closest("[data-panel]").dataset.panel}.${e.name}`; }
function valueOf(e) { return e.type === "checkbox" ? (e.checked ? "1" : "0") : e.value; }
function defaultOf(e) {
  if (e.type === "checkbox") return e.defaultChecked ? "1" : "0";
  if (e.tagName === "SELECT") { const d = [...e.options].find(o => o.defaultSelected) || e.options[0]; return d ? d.value : ""; }
  return e.defaultValue;
}

/** Sets controls from the query string before the panels first load (`why.scheme=rope`, ...). */
export function applyUrlState() {
  const q = new URLSearchParams(location.search);
  for (const e of controls()) {
    const v = q.get(keyOf(e));
    if (v === null) continue;
    if (e.type === "checkbox") e.checked = v === "1" || v === "true";
    else if (e.tagName === "SELECT" && ![...e.options].some(o => o.value === v)) {
      // Options filled in later (exercise lists) are applied when they arrive.
      e.dataset.pending = v;
    } else e.value = v;
  }
}

/** Writes every control that differs from its default to the query string (replaceState). */
export function writeUrlState() {
  const q = new URLSearchParams();
  for (const e of controls()) {
    const v = valueOf(e);
    if (v !== defaultOf(e)) q.set(keyOf(e), v);
  }
  const s = q.toString();
  history.replaceState(null, "", `${location.pathname}${s ? "?" + s : ""}${location.hash}`);
}

export function watchUrlState() {
  let t;
  document.addEventListener("input", ev => {
    if (!ev.target.closest || !ev.target.closest("[data-panel] .controls")) return;
    clearTimeout(t); t = setTimeout(writeUrlState, 100);
  });
}

/** A share link for the current settings, in the header. */
export function shareLink() {
  const b = document.querySelector("[data-role=share]");
  if (!b) return;
  b.addEventListener("click", async () => {
    writeUrlState();
    const out = document.querySelector("[data-role=share-out]");
    try { await navigator.clipboard.writeText(location.href); out.textContent = "link copied"; } catch (e) { out.textContent = location.href; }
  });
}
