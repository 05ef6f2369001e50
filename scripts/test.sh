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

echo "== cargo test (release)"
cargo test --release --workspace --locked

if [ -x scripts/browser-test.sh ]; then
  echo "== browser test"
  scripts/browser-test.sh
fi
