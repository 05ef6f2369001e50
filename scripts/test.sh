#!/usr/bin/env bash
# All tests of posenc, from a fresh machine: builds in release, fetches the model,
# installs what the browser test needs, then runs the Rust tests and the browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== build (release)"
cargo build --release --workspace --locked

if ./target/release/posenc model --help >/dev/null 2>&1 && ./target/release/posenc model fetch --help >/dev/null 2>&1; then
  echo "== model fetch"
  ./target/release/posenc model fetch
fi

echo "== MKL kernels (hf precision mode reproduces torch's cos/sin with them)"
scripts/install-mkl.sh >/dev/null

echo "== llama.cpp (llama-cpp-python's server, for the probe tests; cached after the first build)"
scripts/install-llama-cpp.sh >/dev/null

echo "== cargo test (release)"
cargo test --release --workspace --locked

if [ -x scripts/browser-test.sh ]; then
  echo "== browser test"
  scripts/browser-test.sh
fi

# Long mode (off by default): a short coverage-guided fuzzing run of every target (scripts/fuzz.sh
# installs cargo-afl and AFL++ into the cache on first use).
if [ "${POSENC_LONG_TESTS:-0}" = 1 ]; then
  echo "== fuzzing (POSENC_LONG_TESTS=1: ${POSENC_FUZZ_SECONDS:-30} s per target)"
  scripts/fuzz.sh "${POSENC_FUZZ_SECONDS:-30}"
fi
