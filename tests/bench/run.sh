#!/usr/bin/env bash
# Tessera load harness: builds Tessera and the no-op baseline with the same
# profile, then runs `tessera-bench`, which writes the report.
#
#   bash tests/bench/run.sh            # full run (release), writes BENCHMARKS.md (~10-15 min)
#   bash tests/bench/run.sh --quick    # CI smoke run (< 60 s), writes a temp file
#
# Extra arguments are passed to tessera-bench (see `--help`). Needs Redis on
# 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (skipped with a note when
# unreachable); h2load (Debian nghttp2-client) is installed when missing and
# possible. The quick mode fails only when the harness breaks, never on a
# timing.
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
