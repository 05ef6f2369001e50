#!/usr/bin/env bash
# Browser test of the posenc explorer: headless Debian chromium driven by playwright-core.
# Installs what is missing (chromium via apt as root, npm packages via `npm ci`), builds posenc in
# release, starts `posenc serve` on a free loopback port, runs tests/browser/explorer.test.mjs and
# always stops the server. Screenshots land in tests/browser/screenshots/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "browser-test: /usr/bin/chromium is missing and we are not root to apt-get install it" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi

cargo build --release -p posenc-cli
BIN="$ROOT/target/release/posenc"

# A free loopback port: ask the kernel for one.
PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})')
RESULTS=$(mktemp -d)
LOG=$(mktemp)
# A small synthetic passkey result (not model output) so the real-model panel's drawing path runs;
# attention-stats.json stays absent so its "how to produce" path runs too.
cat >"$RESULTS/passkey.json" <<'JSON'
{"note": "synthetic file written by scripts/browser-test.sh, in the shape `posenc model passkey --out DIR` writes",
 "scaling": "none", "context_length": 8192, "trials": 5, "seed": 0, "max_new_tokens": 10,
 "lengths": [256, 512, 1024, 2048], "depths": [0.0, 0.25, 0.5, 0.75, 1.0],
 "accuracy": [[1, 1, 1, 1, 1], [1, 1, 0.8, 1, 1], [1, 0.6, 0.4, 0.8, 1], [0.4, 0.2, 0, 0.2, 0.6]],
 "cells": [{"length": 256, "depth": 0.0, "accuracy": 1.0,
            "trials": [{"passkey": 4242, "answer": 4242, "correct": true, "prompt_tokens": 246, "generated": " 4242."}]}]}
JSON
# Synthetic `posenc lab` results (not measurements), in the layout `posenc lab sweep --out DIR`
# writes (cells/TASK-SCHEME-sSEED.json), so the NoPE panel's curve drawing runs.
mkdir -p "$RESULTS/lab/cells"
lab_cell() { # scheme seed exact_match@32 exact_match@64 exact_match@128
  cat >"$RESULTS/lab/cells/copy-$1-s$2.json" <<JSON
{"note": "synthetic file written by scripts/browser-test.sh, not a measurement",
 "cell": {"task": "copy", "scheme": "$1", "seed": $2},
 "eval": {"task": "copy", "scheme": "$1", "train_len": 32, "test_seed": 1, "results": [
   {"len": 32, "multiple": 1.0, "token_accuracy": 1.0, "exact_match": $3, "nll": 0.1, "ppl": 1.1},
   {"len": 64, "multiple": 2.0, "token_accuracy": 0.9, "exact_match": $4, "nll": 0.5, "ppl": 1.6},
   {"len": 128, "multiple": 4.0, "token_accuracy": 0.7, "exact_match": $5, "nll": 1.2, "ppl": 3.3}]}}
JSON
}
lab_cell nope 0 1.0 0.6 0.2
lab_cell nope 1 0.9 0.5 0.1
lab_cell rope 0 1.0 0.2 0.0
lab_cell alibi 0 0.9 0.7 0.4
"$BIN" serve --port "$PORT" --results "$RESULTS" --lab "$RESULTS/lab" >"$LOG" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$RESULTS"
}
trap cleanup EXIT INT TERM

for _ in $(seq 1 100); do
  if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://127.0.0.1:$PORT/api/health"; then
    break
  fi
  sleep 0.1
done

status=0
POSENC_URL="http://127.0.0.1:$PORT/" POSENC_EXPECT_PASSKEY=1 node tests/browser/explorer.test.mjs || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log (last 40 lines) ---"
  tail -n 40 "$LOG"
fi
rm -f "$LOG"
exit "$status"
