// Load generator for the posenc explorer API (not a CI test). No dependencies: Node 20 fetch.
// Usage: node scripts/load-test.mjs URL [clients=64] [seconds=30]
// Each client loops over a fixed mix of the page's own requests (every panel's GET endpoints, the
// learning path, and the config box's POST); prints requests/s, latency percentiles and non-2xx
// counts per endpoint and overall. Exits 1 if any answer was not 2xx.
const [base = "http://127.0.0.1:7878", clientsArg = "64", secondsArg = "30"] = process.argv.slice(2);
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
const pathOf = entry => (Array.isArray(entry) ? entry[0] : entry);
const stats = new Map(MIX.map(e => [pathOf(e).split("?")[0], { lat: [], non2xx: 0, errors: 0 }]));
const deadline = performance.now() + seconds * 1000;
async function client(id) {
  let i = id % MIX.length;
  while (performance.now() < deadline) {
    const entry = MIX[i++ % MIX.length];
    const path = pathOf(entry);
    const s = stats.get(path.split("?")[0]);
    const t0 = performance.now();
    try {
      const init = Array.isArray(entry) ? { method: "POST", body: entry[1] } : undefined;
      const resp = await fetch(new URL(path, base), init);
      await resp.arrayBuffer();
      if (resp.status < 200 || resp.status >= 300) s.non2xx++;
      s.lat.push(performance.now() - t0);
    } catch (e) {
      s.errors++;
    }
  }
}
const pct = (sorted, q) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
const t0 = performance.now();
await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
const elapsed = (performance.now() - t0) / 1000;
let all = [], non2xx = 0, errors = 0;
console.log(`endpoint                          requests   p50 ms   p99 ms  non-2xx  errors`);
for (const [name, s] of stats) {
  const sorted = s.lat.slice().sort((a, b) => a - b);
  all = all.concat(s.lat); non2xx += s.non2xx; errors += s.errors;
  console.log(`${name.padEnd(32)} ${String(s.lat.length).padStart(9)} ${pct(sorted, 0.5).toFixed(1).padStart(8)} ${pct(sorted, 0.99).toFixed(1).padStart(8)} ${String(s.non2xx).padStart(8)} ${String(s.errors).padStart(7)}`);
}
all.sort((a, b) => a - b);
console.log(`total: ${all.length} requests in ${elapsed.toFixed(1)} s with ${clients} clients = ${(all.length / elapsed).toFixed(0)} req/s; ` +
  `p50 ${pct(all, 0.5).toFixed(1)} ms, p99 ${pct(all, 0.99).toFixed(1)} ms; non-2xx ${non2xx}; transport errors ${errors}`);
process.exit(non2xx || errors ? 1 : 0);
