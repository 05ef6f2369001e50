#!/usr/bin/env bash
# Coverage-guided fuzzing of posenc's parsers on stable Rust: AFL++ through cargo-afl (both built
# from crates.io, cached under ${POSENC_CACHE:-~/.cache/posenc}), targets in fuzz/.
#
# Usage: scripts/fuzz.sh [SECONDS]        (seconds per target, default 60)
#        FUZZ_TARGETS="config server" scripts/fuzz.sh 600
#
# Each target starts from its committed seeds (fuzz/seeds/TARGET), real inputs (the shared
# fixtures' config.json files and truncations of them; SmolLM2's vocabulary for the tokenizer,
# read from the model that `posenc model fetch` caches) and the corpus kept from earlier runs
# (cache/fuzz-corpus/TARGET). Prints executions, execs/s, coverage (edges, bitmap), crashes and
# hangs per target; crashing inputs are copied to fuzz/out/crashes/TARGET. Exit status 1 when a
# target crashed or hung.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECONDS_PER_TARGET=${1:-60}
TARGETS=${FUZZ_TARGETS:-"config tokenizer cli_values server gguf"}
CACHE=${POSENC_CACHE:-$HOME/.cache/posenc}
AFL_VERSION=0.18.2
export PATH="$CACHE/cargo-afl/bin:$PATH"
# cargo-afl keeps its AFL++ build under XDG_DATA_HOME/afl.rs.
export XDG_DATA_HOME="$CACHE/afl-data"
mkdir -p "$CACHE"

# One install at a time (several checkouts may share the cache).
exec 9>"$CACHE/fuzz-install.lock"
flock 9
if ! cargo afl --version 2>/dev/null | grep -q "$AFL_VERSION"; then
  echo "== installing cargo-afl $AFL_VERSION (crates.io) into $CACHE/cargo-afl"
  nice -n 10 cargo install cargo-afl --version "$AFL_VERSION" --locked --root "$CACHE/cargo-afl"
fi
if ! ls "$XDG_DATA_HOME"/afl.rs/rustc-*/afl.rs-"$AFL_VERSION"/afl/bin/afl-fuzz >/dev/null 2>&1 \
  || ! ls "$XDG_DATA_HOME"/afl.rs/rustc-"$(rustc --version | awk '{print $2}')"-*/afl.rs-"$AFL_VERSION"/afl-llvm/afl-compiler-rt.o >/dev/null 2>&1; then
  echo "== building AFL++ (bundled with cargo-afl; needs make and a C compiler)"
  command -v make >/dev/null && command -v cc >/dev/null || {
    apt-get update -qq && apt-get install -y -qq make gcc
  }
  nice -n 10 cargo afl config --build --force
fi
flock -u 9

echo "== building the fuzz targets (instrumented, release with debug assertions)"
(cd fuzz && nice -n 10 cargo afl build --release --locked)

OUT="$ROOT/fuzz/out"
mkdir -p "$OUT"
GGUF=""
if [ -x target/release/posenc ]; then
  GGUF=$(target/release/posenc model fetch --json 2>/dev/null | sed -n 's/.*"path":"\([^"]*\)".*/\1/p' || true)
fi
if [ -n "$GGUF" ] && [ -f "$GGUF" ]; then
  export POSENC_FUZZ_GGUF="$GGUF"
  echo "tokenizer: SmolLM2-135M's vocabulary from $GGUF"
else
  echo "tokenizer: built-in vocabulary (build posenc in release and run \`posenc model fetch\` for the real one)"
fi
FIXTURES=${POSENC_FIXTURES:-$ROOT/../shared/fixtures}

seeds_for() {
  local target=$1 dir=$2
  rm -rf "$dir"
  mkdir -p "$dir"
  cp fuzz/seeds/"$target"/* "$dir"/ 2>/dev/null || true
  case $target in
    config)
      for f in "$FIXTURES"/rope/*.config.json; do
        [ -f "$f" ] || continue
        local base
        base=$(basename "$f" .json)
        cp "$f" "$dir/$base"
        # Truncations: the parser sees every prefix length class.
        local size
        size=$(wc -c <"$f")
        for cut in 1 17 $((size / 3)) $((size / 2)) $((size - 2)); do
          [ "$cut" -gt 0 ] && head -c "$cut" "$f" >"$dir/$base.cut$cut"
        done
      done
      ;;
    tokenizer)
      # Mode byte 0 (encode) + real text: the README and the fixtures' README.
      local i=0
      for f in README.md "$FIXTURES"/README.md; do
        [ -f "$f" ] || continue
        split -b 512 -a 3 "$f" "$dir/text.$i." 2>/dev/null || true
        i=$((i + 1))
      done
      for f in "$dir"/text.*; do
        [ -f "$f" ] || continue
        { printf '\0'; cat "$f"; } >"$f.enc" && rm "$f"
      done
      # AFL is slow with many large seeds: keep 64.
      ls "$dir"/text.* 2>/dev/null | tail -n +65 | xargs -r rm
      ;;
    gguf)
      # Tiny consistent models in every supported weight type, truncations, and the head of the
      # real model file (its llama.cpp-written metadata).
      python3 fuzz/gguf_seeds.py "$dir" "${POSENC_FUZZ_GGUF:-}"
      ;;
    server)
      # The config inspector's box, with every fixture config.
      local n=0
      for f in "$FIXTURES"/rope/*.config.json; do
        [ -f "$f" ] || continue
        { printf 'POST /api/config/inspect\ncontent-type: application/json\n\n'; cat "$f"; } >"$dir/inspect.$n"
        n=$((n + 1))
      done
      ;;
  esac
  if [ -d "$CACHE/fuzz-corpus/$target" ]; then
    cp "$CACHE/fuzz-corpus/$target"/* "$dir"/ 2>/dev/null || true
  fi
}

timeout_for() {
  case $1 in
    server) echo 5000 ;;
    *) echo 2000 ;;
  esac
}

export AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_TRY_AFFINITY=0 AFL_QUIET=1
STATUS=0
SUMMARY="$OUT/summary.txt"
printf '%-11s %8s %12s %10s %14s %9s %8s %6s %s\n' target seconds execs execs/s edges bitmap corpus hangs crashes >"$SUMMARY"
for target in $TARGETS; do
  echo "== fuzzing $target for $SECONDS_PER_TARGET s"
  seeds="$OUT/seeds/$target"
  seeds_for "$target" "$seeds"
  rm -rf "$OUT/$target"
  # -m: address-space cap (MiB), so an allocation driven by the input fails as a crash instead
  # of exhausting the machine. -V: stop after the budget.
  nice -n 10 cargo afl fuzz -i "$seeds" -o "$OUT/$target" -m 4096 -t "$(timeout_for "$target")" \
    -V "$SECONDS_PER_TARGET" -- "fuzz/target/release/$target" >"$OUT/$target.log" 2>&1 || {
      echo "afl-fuzz failed for $target; last lines of $OUT/$target.log:"
      tail -20 "$OUT/$target.log"
      STATUS=1
      continue
    }
  stats="$OUT/$target/default/fuzzer_stats"
  get() { sed -n "s/^$1 *: *//p" "$stats" | head -1; }
  crashes=$(get saved_crashes)
  hangs=$(get saved_hangs)
  printf '%-11s %8s %12s %10s %14s %9s %8s %6s %s\n' "$target" "$(get run_time)" "$(get execs_done)" \
    "$(get execs_per_sec)" "$(get edges_found)/$(get total_edges)" "$(get bitmap_cvg)" \
    "$(get corpus_count)" "$hangs" "$crashes" | tee -a "$SUMMARY"
  # Keep the corpus for the next run.
  mkdir -p "$CACHE/fuzz-corpus/$target"
  cp "$OUT/$target"/default/queue/id:* "$CACHE/fuzz-corpus/$target"/ 2>/dev/null || true
  if [ "${crashes:-0}" != 0 ] || [ "${hangs:-0}" != 0 ]; then
    mkdir -p "$OUT/crashes/$target"
    cp "$OUT/$target"/default/crashes/id:* "$OUT/$target"/default/hangs/id:* "$OUT/crashes/$target"/ 2>/dev/null || true
    echo "!! $target: $crashes crashes, $hangs hangs; inputs in $OUT/crashes/$target"
    echo "   replay one: fuzz/target/release/$target < INPUT"
    STATUS=1
  fi
done
echo "== summary (also in $SUMMARY)"
cat "$SUMMARY"
exit $STATUS
