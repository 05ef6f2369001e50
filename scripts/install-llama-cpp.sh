#!/usr/bin/env bash
# Installs llama.cpp (through the PyPI package llama-cpp-python, with its OpenAI-compatible
# `[server]` extra) into a virtual environment outside the checkout, compiled from source with
# native CPU flags. The first run takes about 10 minutes on 2 cores; later runs find the
# environment and return at once. Prints the environment's python path on stdout.
#
#   scripts/install-llama-cpp.sh            # -> /root/.cache/posenc/llama-cpp-0.3.36/bin/python
#   POSENC_CACHE=/elsewhere scripts/install-llama-cpp.sh
#
# Used by the probe tests (llama.cpp's server) and scripts/bench-model.sh (llama.cpp column).
set -euo pipefail
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
CACHE=${POSENC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/posenc}
VENV="$CACHE/llama-cpp-$VERSION"
PY="$VENV/bin/python"
STAMP="$VENV/.posenc-installed"

mkdir -p "$CACHE"
# One install at a time: a second caller waits here, then finds the finished environment.
exec 9>"$CACHE/.llama-cpp-$VERSION.lock"
flock 9
if [ -f "$STAMP" ] && "$PY" -c 'import llama_cpp, llama_cpp.server' >/dev/null 2>&1; then
  echo "$PY"
  exit 0
fi

PYTHON=${PYTHON_FOR_VENV:-python3}
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV" >&2
"$PY" -m pip install --quiet --upgrade pip >&2
# Native flags (GGML_NATIVE) so llama.cpp uses this machine's AVX2/AVX-512; compiled from source.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON}" \
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  "$PY" -m pip install --quiet --no-binary llama-cpp-python "llama-cpp-python[server]==$VERSION" >&2
"$PY" -c 'import llama_cpp, llama_cpp.server' >&2
touch "$STAMP"
echo "$PY"
