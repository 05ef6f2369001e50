#!/usr/bin/env bash
# Installs Ray (PyPI `ray`, the core package: tasks and a local head, no extras) into a virtual
# environment outside the checkout, for scripts/lab-ray.py and its test. The first run downloads
# a wheel of about 70 MB; later runs find the environment and return at once. Prints the
# environment's python path on stdout; exits non-zero when the install is impossible (no
# network, no wheel for this Python).
#
#   scripts/install-ray.sh                  # -> ~/.cache/posenc/ray-2.x/bin/python
#   POSENC_CACHE=/elsewhere scripts/install-ray.sh
set -euo pipefail
VERSION=${RAY_VERSION:-2.60.0}
CACHE=${POSENC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/posenc}
VENV="$CACHE/ray-$VERSION"
PY="$VENV/bin/python"
STAMP="$VENV/.posenc-installed"

mkdir -p "$CACHE"
# One install at a time: a second caller waits here, then finds the finished environment.
exec 9>"$CACHE/.ray-$VERSION.lock"
flock 9
if [ -f "$STAMP" ] && "$PY" -c 'import ray' >/dev/null 2>&1; then
  echo "$PY"
  exit 0
fi

PYTHON=${PYTHON_FOR_VENV:-python3}
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV" >&2
"$PY" -m pip install --quiet --upgrade pip >&2
"$PY" -m pip install --quiet "ray==$VERSION" >&2
"$PY" -c 'import ray' >&2
touch "$STAMP"
echo "$PY"
