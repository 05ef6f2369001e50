#!/usr/bin/env bash
# Installs the MKL kernels posenc's `hf` precision mode calls for cos/sin (torch computes float32
# cos/sin with MKL's vector math library, whose algorithm is not public): the PyPI package
# mkl==2024.2.2 (the release torch 2.x's Linux wheels are built with), of which only the core and
# the vector-math kernel libraries are kept (~145 MB), in a cache directory outside the checkout.
# Prints the library directory. Later runs find it and return at once.
#
#   scripts/install-mkl.sh        # -> $HOME/.cache/posenc/mkl-2024.2.2/lib
#   POSENC_CACHE=/elsewhere scripts/install-mkl.sh
set -euo pipefail
VERSION=2024.2.2
CACHE=${POSENC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/posenc}
LIB="$CACHE/mkl-$VERSION/lib"
LIBS="libmkl_core.so.2 libmkl_vml_avx2.so.2 libmkl_vml_avx512.so.2 libmkl_vml_def.so.2"
complete() { for f in $LIBS; do [ -f "$LIB/$f" ] || return 1; done; }
if complete; then echo "$LIB"; exit 0; fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.mkl-$VERSION.lock"
flock 9
if complete; then echo "$LIB"; exit 0; fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip download --quiet --no-deps --only-binary :all: -d "$TMP" "mkl==$VERSION" >&2
WHEEL=$(ls "$TMP"/mkl-"$VERSION"-*.whl)
mkdir -p "$LIB.partial"
for f in $LIBS; do
  "$PYTHON" - "$WHEEL" "mkl-$VERSION.data/data/lib/$f" "$LIB.partial/$f" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
done
rm -rf "$LIB"
mv "$LIB.partial" "$LIB"
echo "$LIB"
