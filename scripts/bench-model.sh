#!/usr/bin/env bash
# Real-model speed: posenc against llama.cpp (llama-cpp-python, installed by
# scripts/install-llama-cpp.sh into a cache outside the checkout) on the same GGUF, the same
# token ids (posenc writes them with --ids-out) and the same thread count, in interleaved rounds.
# Prints one JSON object: {"rows": [{"tokens", "posenc_prefill", "llamacpp_prefill",
# "prefill_ratio", "posenc_decode", "llamacpp_decode", "decode_ratio", ...}], ...}; rates are
# tokens/s, medians over the rounds (the *_best fields are the fastest round), and ratios are
# posenc / llama.cpp. llama.cpp runs with flash attention off and on (f16 KV cache, its default);
# its column is the faster setting at each length (both are in the row). The interleaving is
# posenc, llama.cpp FA off, llama.cpp FA on, then the next round.
#
#   scripts/bench-model.sh                                  # 512 2048 8192, 3 rounds
#   TOKENS="512 2048" ROUNDS=5 DECODE=32 scripts/bench-model.sh
#   MODEL=/path/to/file.gguf scripts/bench-model.sh         # default: the bundled SmolLM2 Q4_1
#   PYTHON=/path/to/venv/bin/python scripts/bench-model.sh  # + PyTorch rows (scripts/bench_torch.py)
#
# THREADS (default 2) sets RAYON_NUM_THREADS, llama.cpp's n_threads/n_threads_batch and torch's
# thread count. Weights in llama.cpp use plain CPU buffers (use_extra_bufts = false): its default
# repacked (AMX/extra) buffers crash with a segmentation fault on this model on the benchmark VM.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
DECODE=${DECODE:-32}
# llama-cpp-python 0.3.36 builds ggml with OpenMP (llama_print_system_info: OPENMP = 1): with
# libgomp's default spin-waiting, 2 threads on this shared 2-vCPU VM decoded at 0.6-3.7 tokens/s;
# OMP_WAIT_POLICY=passive gave 32.7 (the same fix as for torch above). POLL sets the polling of a
# ggml threadpool attached by hand (0..100, llama.cpp's --poll); "default" keeps llama.cpp's own.
LLAMA_OMP_WAIT_POLICY=${LLAMA_OMP_WAIT_POLICY:-passive}
POLL=${POLL:-default}
TOKENS=${TOKENS:-"512 2048 8192"}
cargo build --release -p posenc-cli --locked >/dev/null
BIN=./target/release/posenc
if [ -z "${MODEL:-}" ]; then
  $BIN model fetch >/dev/null
  MODEL=$($BIN model fetch --json | sed -E 's/.*"path":"([^"]+)".*/\1/')
fi
LLAMA_PY=$(scripts/install-llama-cpp.sh)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for n in $TOKENS; do
  for r in $(seq "$ROUNDS"); do
    # Interleaved: one posenc round, then one llama.cpp round per setting, then again.
    RAYON_NUM_THREADS=$THREADS $BIN model bench --model "$MODEL" --tokens "$n" --decode "$DECODE" \
      --ids-out "$TMP/ids-$n.json" --json >>"$TMP/posenc-$n.jsonl"
    for fa in off on; do
      flag=""
      [ "$fa" = on ] && flag="--flash-attn"
      [ "$POLL" != default ] && flag="$flag --poll $POLL"
      OMP_WAIT_POLICY=$LLAMA_OMP_WAIT_POLICY "$LLAMA_PY" scripts/bench_llamacpp.py --model "$MODEL" --ids "$TMP/ids-$n.json" \
        --threads "$THREADS" --decode "$DECODE" $flag 2>/dev/null >>"$TMP/llama-$n-$fa.jsonl"
    done
  done
done
TORCH_OUT=""
if [ -n "${PYTHON:-}" ]; then
  TORCH_OUT="$TMP/torch.jsonl"
  # shellcheck disable=SC2086
  OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OMP_NUM_THREADS=$THREADS "$PYTHON" scripts/bench_torch.py \
    --model "$MODEL" --threads "$THREADS" --tokens $TOKENS --decode "$DECODE" --repeat "$ROUNDS" \
    2>/dev/null >"$TORCH_OUT"
fi
python3 - "$TMP" "$TOKENS" "$THREADS" "$ROUNDS" "$DECODE" "$MODEL" "$TORCH_OUT" "$POLL" "$LLAMA_OMP_WAIT_POLICY" <<'EOF'
import json, statistics, sys
tmp, tokens, threads, rounds, decode, model, torch_out = sys.argv[1:8]
def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]
def stats(runs, key):
    v = [r[key] for r in runs]
    return {"median": statistics.median(v), "best": max(v), "worst": min(v)}
rows = []
for n in tokens.split():
    p = load(f"{tmp}/posenc-{n}.jsonl")
    ll = {fa: load(f"{tmp}/llama-{n}-{fa}.jsonl") for fa in ("off", "on")}
    pp, pd = stats(p, "prefill_tokens_per_s"), stats(p, "decode_tokens_per_s")
    lp = {fa: stats(r, "prefill_tokens_per_s") for fa, r in ll.items()}
    ld = {fa: stats(r, "decode_tokens_per_s") for fa, r in ll.items()}
    fa_p = max(lp, key=lambda fa: lp[fa]["median"])
    fa_d = max(ld, key=lambda fa: ld[fa]["median"])
    rows.append({
        "tokens": int(n),
        "posenc_prefill": pp["median"], "llamacpp_prefill": lp[fa_p]["median"],
        "prefill_ratio": pp["median"] / lp[fa_p]["median"],
        "posenc_decode": pd["median"], "llamacpp_decode": ld[fa_d]["median"],
        "decode_ratio": pd["median"] / ld[fa_d]["median"],
        "posenc_prefill_best": pp["best"], "posenc_prefill_worst": pp["worst"],
        "posenc_decode_best": pd["best"], "posenc_decode_worst": pd["worst"],
        "llamacpp_prefill_flash_attn": fa_p == "on", "llamacpp_decode_flash_attn": fa_d == "on",
        "llamacpp_prefill_fa_off": lp["off"], "llamacpp_prefill_fa_on": lp["on"],
        "llamacpp_decode_fa_off": ld["off"], "llamacpp_decode_fa_on": ld["on"],
        "posenc_peak_rss_bytes": max(r.get("peak_rss_bytes") or 0 for r in p),
        # CPU seconds per token (all threads): less sensitive to other load than wall time, but
        # it counts busy-waiting as work.
        "posenc_prefill_cpu_ms_per_token": 1e3 * statistics.median(r["prefill_cpu_s"] / r["prefill_tokens"] for r in p),
        "posenc_decode_cpu_ms_per_token": 1e3 * statistics.median(r["decode_cpu_s"] / max(r["decode_tokens"], 1) for r in p),
        "llamacpp_prefill_cpu_ms_per_token": 1e3 * statistics.median(r["prefill_cpu_s"] / r["prefill_tokens"] for r in ll["on" if fa_p == "on" else "off"]),
        "llamacpp_decode_cpu_ms_per_token": 1e3 * statistics.median(r["decode_cpu_s"] / max(r["decode_tokens"], 1) for r in ll["on" if fa_d == "on" else "off"]),
    })
out = {"rows": rows, "threads": int(threads), "llamacpp_poll": sys.argv[8], "llamacpp_omp_wait_policy": sys.argv[9], "rounds": int(rounds), "decode_tokens": int(decode),
       "model": model, "rates": "tokens/s; medians over rounds; ratio = posenc / llama.cpp"}
if torch_out:
    out["torch"] = load(torch_out)
print(json.dumps(out))
EOF
