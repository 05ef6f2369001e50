#!/usr/bin/env bash
# Real-model speed: posenc prefill at 512, 2048 and 8192 tokens and decode, then the same with
# PyTorch (transformers, float32, CPU, same thread count) when a Python with torch is given.
#   scripts/bench-model.sh                      # posenc only
#   PYTHON=/path/to/venv/bin/python scripts/bench-model.sh   # + torch (pip install torch transformers gguf accelerate, from PyPI)
# THREADS (default 2) sets both RAYON_NUM_THREADS and torch.set_num_threads; REPEAT (default 3)
# runs each measurement (posenc and torch) several times and keeps the fastest. Run it on a quiet
# machine. Torch runs with OMP_WAIT_POLICY=passive (override with OMP_WAIT_POLICY=...): on the
# shared 2-vCPU machine of BENCHMARKS.md, libgomp's default spin-waiting made every 2-thread torch
# op wait about 8 ms (a 1×576·576×1536 product: 8.0 ms default, 0.15 ms passive).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-3}
cargo build --release -p posenc-cli --locked >/dev/null
./target/release/posenc model fetch >/dev/null
BIN=./target/release/posenc
for n in 512 2048 8192; do
  RAYON_NUM_THREADS=$THREADS $BIN model bench --tokens "$n" --decode 32 --repeat "$REPEAT" --json
done
if [ -n "${PYTHON:-}" ]; then
  MODEL=$($BIN model fetch --json | sed -E 's/.*"path":"([^"]+)".*/\1/')
  OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OMP_NUM_THREADS=$THREADS "$PYTHON" scripts/bench_torch.py \
    --model "$MODEL" --threads "$THREADS" --tokens 512 2048 8192 --decode 32 --repeat "$REPEAT" 2>/dev/null
fi
