#!/usr/bin/env bash
# Load test of the explorer API (not part of CI): builds posenc in release, starts `posenc serve`
# on a free loopback port with request logging off, drives it with scripts/load-test.mjs
# (64 concurrent clients for 30 s by default) and stops the server.
# Usage: scripts/load-test.sh [clients] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-64}
SECONDS_=${2:-30}
cargo build --release -p posenc-cli
PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})')
POSENC_QUIET=1 target/release/posenc serve --port "$PORT" 2>/tmp/posenc-load-server.log &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
  node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://127.0.0.1:$PORT/api/health" && break
  sleep 0.1
done
echo "machine: $(nproc) cores; server and load generator share them"
node scripts/load-test.mjs "http://127.0.0.1:$PORT" "$CLIENTS" "$SECONDS_"
