#!/usr/bin/env bash
# Load test of the explorer API (not part of CI): builds posenc in release, starts `posenc serve`
# on a free loopback port with request logging off, and drives it with scripts/load-test.mjs in
# two phases of 64 concurrent compute clients for 30 s each (defaults), a health prober alongside:
#   1. the page's compute mix;
#   2. the same mix plus the config inspector on the Llama 3.1 config (the slow request).
# Prints throughput and p50/p99 of the compute endpoints and the health latency of each phase,
# with the load average before and after; stops the server.
# Usage: scripts/load-test.sh [clients] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-64}
SECONDS_=${2:-30}
FIXTURES=${POSENC_FIXTURES:-../shared/fixtures}
HEAVY="$FIXTURES/rope/llama-3.1-8b.config.json"
cargo build --release -p posenc-cli
PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})')
POSENC_QUIET=1 target/release/posenc serve --port "$PORT" --results results 2>/tmp/posenc-load-server.log &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
  node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://127.0.0.1:$PORT/api/health" && break
  sleep 0.1
done
echo "machine: $(nproc) cores; server and load generator share them"
STATUS=0
echo "== phase 1: compute mix ($CLIENTS clients, $SECONDS_ s); load average $(cut -d' ' -f1-3 /proc/loadavg)"
node scripts/load-test.mjs "http://127.0.0.1:$PORT" "$CLIENTS" "$SECONDS_" || STATUS=1
echo "== phase 2: compute mix + inspect of the Llama 3.1 config; load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -f "$HEAVY" ]; then
  node scripts/load-test.mjs "http://127.0.0.1:$PORT" "$CLIENTS" "$SECONDS_" "$HEAVY" || STATUS=1
else
  echo "skipped: $HEAVY not found (set POSENC_FIXTURES)"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $STATUS
