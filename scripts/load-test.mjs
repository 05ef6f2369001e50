// Load generator for the posenc explorer API (not a CI test). No dependencies: Node 20 fetch.
// Usage: node scripts/load-test.mjs URL [clients=64] [seconds=30] [heavy-config.json]
//
// `clients` compute clients loop for `seconds` over a fixed mix of the page's own compute
// requests (every panel's GET endpoints, the learning path, and the config box's POST with
// SmolLM2-135M's settings; with a heavy config file, its POST joins the mix: the Llama 3.1
// config takes about a second per inspection). In the same run one more client asks
// /api/health every 10 ms, so its latency shows whether cheap requests stay fast while compute
// is saturated. Prints per-endpoint requests, p50/p99 and non-2xx counts, the compute total
// (requests/s, p50/p99), the health latency (p50/p99/max), and one JSON line with the figures.
// Every request has a 30 s client timeout. 503 answers (the server shedding overload) are counted
// apart; exits 1 if any other answer was not 2xx, a request failed, or health was not 200.
import { readFileSync } from "node:fs";

const [base = "http://127.0.0.1:7878", clientsArg = "64", secondsArg = "30", heavyFile] = process.argv.slice(2);
const url = new URL(base);
if (!["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) {
  console.error("load-test: refusing a non-loopback target"); process.exit(2);
}
const clients = Number(clientsArg), seconds = Number(secondsArg);
const MIX = [
  "/api/sinusoidal/table?len=4096&dim=128&width=1024",
  "/api/sinusoidal/row?position=123&dim=128",
  "/api/learned/table?max_positions=64&dim=32&resize_to=128&len=160&width=512",
  "/api/rope/rotation?head_dim=64&position=777",
  "/api/rope/angles?head_dim=64&len=1024&width=1024",
  "/api/rope/decay?head_dim=64&max_distance=1024&width=600",
  "/api/rope/relative_check?head_dim=64&m=5&n=2&s=100",
  "/api/alibi?heads=8&len=16&head=0&causal=true",
  "/api/relative/t5?num_buckets=32&max_distance=128&span=1200&len=64",
  "/api/relative/shaw?clip=4&len=32",
  "/api/why?scheme=rope",
  "/api/longctx?scaling=llama3&factor=8&original_max=8192&head_dim=128&base=500000&target_len=65536&width=600",
  "/api/longctx/base_bound?head_dim=128&context=4096&base=500000",
  "/api/learn/instance?n=4&seed=7",
  "/api/learn/check?n=9&seed=3&part=b&answer=7,6,5",
  "/api/learn/explain?topic=rope",
  "/api/learn/advise?train_len=4096&target_len=32768&retrieval=true",
  // POST: the page's "paste a config.json" box (SmolLM2-135M's RoPE settings, 8192-token context).
  ["/api/config/inspect", JSON.stringify({ model_type: "llama", hidden_size: 576, num_attention_heads: 9, num_key_value_heads: 3,
    head_dim: 64, max_position_embeddings: 8192, rope_theta: 100000.0, rope_scaling: null })],
];
if (heavyFile) MIX.push(["/api/config/inspect#heavy", readFileSync(heavyFile, "utf8")]);
const pathOf = entry => (Array.isArray(entry) ? entry[0] : entry);
const nameOf = entry => pathOf(entry).split("?")[0];
// `shed`: 503 answers (no computation slot freed within the server's queue timeout): the server
// refusing overload, counted apart from failures.
const newStats = () => ({ lat: [], non2xx: 0, shed: 0, errors: 0 });
const stats = new Map(MIX.map(e => [nameOf(e), newStats()]));
const health = newStats();
const deadline = performance.now() + seconds * 1000;
const TIMEOUT_MS = 30_000;

async function once(entry, s) {
  const path = pathOf(entry).replace("#heavy", "");
  const t0 = performance.now();
  try {
    const init = { signal: AbortSignal.timeout(TIMEOUT_MS) };
    if (Array.isArray(entry)) Object.assign(init, { method: "POST", body: entry[1] });
    const resp = await fetch(new URL(path, base), init);
    await resp.arrayBuffer();
    if (resp.status === 503) s.shed++;
    else if (resp.status < 200 || resp.status >= 300) s.non2xx++;
    s.lat.push(performance.now() - t0);
  } catch (e) {
    s.errors++;
  }
}
async function client(id) {
  let i = id % MIX.length;
  while (performance.now() < deadline) {
    const entry = MIX[i++ % MIX.length];
    await once(entry, stats.get(nameOf(entry)));
  }
}
async function healthProbe() {
  while (performance.now() < deadline) {
    await once("/api/health", health);
    await new Promise(r => setTimeout(r, 10));
  }
}
const pct = (sorted, q) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
const t0 = performance.now();
await Promise.all([healthProbe(), ...Array.from({ length: clients }, (_, i) => client(i))]);
const elapsed = (performance.now() - t0) / 1000;
let all = [], non2xx = 0, shed = 0, errors = 0;
const row = (name, s) => {
  const sorted = s.lat.slice().sort((a, b) => a - b);
  console.log(`${name.padEnd(32)} ${String(s.lat.length).padStart(9)} ${pct(sorted, 0.5).toFixed(1).padStart(8)} ${pct(sorted, 0.99).toFixed(1).padStart(8)} ${String(s.non2xx).padStart(8)} ${String(s.shed).padStart(6)} ${String(s.errors).padStart(7)}`);
};
console.log(`endpoint                          requests   p50 ms   p99 ms  non-2xx  503s  errors`);
for (const [name, s] of stats) {
  row(name, s);
  all = all.concat(s.lat); non2xx += s.non2xx; shed += s.shed; errors += s.errors;
}
row("/api/health (1 prober)", health);
all.sort((a, b) => a - b);
const h = health.lat.slice().sort((a, b) => a - b);
const summary = {
  clients, seconds: Number(elapsed.toFixed(1)), heavy: Boolean(heavyFile),
  compute: { requests: all.length, rps: Math.round(all.length / elapsed), p50_ms: +pct(all, 0.5).toFixed(1), p99_ms: +pct(all, 0.99).toFixed(1), non2xx, shed_503: shed, errors },
  health: { requests: h.length, p50_ms: +pct(h, 0.5).toFixed(2), p99_ms: +pct(h, 0.99).toFixed(2), max_ms: +(h[h.length - 1] ?? NaN).toFixed(1), non2xx: health.non2xx, errors: health.errors },
};
console.log(`compute: ${all.length} requests in ${elapsed.toFixed(1)} s with ${clients} clients = ${summary.compute.rps} req/s; ` +
  `p50 ${summary.compute.p50_ms} ms, p99 ${summary.compute.p99_ms} ms; 503 (overload shed) ${shed}; other non-2xx ${non2xx}; transport errors ${errors}`);
console.log(`health while compute is saturated: p50 ${summary.health.p50_ms} ms, p99 ${summary.health.p99_ms} ms, max ${summary.health.max_ms} ms over ${h.length} requests`);
console.log(JSON.stringify(summary));
process.exit(non2xx || errors || health.non2xx || health.shed || health.errors ? 1 : 0);
