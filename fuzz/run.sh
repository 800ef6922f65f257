#!/usr/bin/env bash
# Coverage-guided fuzzing of Tessera with cargo-fuzz (libFuzzer): builds the
# targets of this directory and runs each one for a bounded time. Exits
# non-zero when a target crashes; the crashing input is then in
# fuzz/artifacts/<target>/ (replay it with
# `fuzz/run.sh --replay <target> <file>`).
#
#   fuzz/run.sh [SECONDS] [TARGET...]   each target SECONDS (default 60); all by default
#   fuzz/run.sh --seeds                 rewrite fuzz/corpus/ from src/seeds.rs
#   fuzz/run.sh --replay TARGET FILE    run one input once (with the same
#                                       TESSERA_FUZZ_POSTGRES_URL as the run
#                                       that found it)
#
# Targets: token (token parsing), bearer (authorization header parsing),
# rpc (any bytes as the request of any RPC, through the real server; on
# PostgreSQL with TESSERA_FUZZ_POSTGRES_URL=postgres://…/<maintenance db>).
# What libFuzzer finds beyond the committed seeds is kept outside the clone,
# in $TESSERA_FUZZ_TARGET_DIR/corpus/<target>, so later runs start from it.
set -euo pipefail
cd "$(dirname "$0")"

export CARGO_TARGET_DIR="${TESSERA_FUZZ_TARGET_DIR:-$HOME/.cache/tessera-fuzz-target}"
# cargo-fuzz passes nightly-only flags to rustc (-Zsanitizer=address and the
# coverage instrumentation behind -Cpasses=sancov-module need -Z options);
# the machine has a stable toolchain only, and RUSTC_BOOTSTRAP=1 makes it
# accept them. Only this build sees it: the fuzz crate is not part of the
# repository's workspace.
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
ALL_TARGETS=(token bearer rpc)
# libFuzzer's lines about single inputs: new coverage, reductions, progress.
PER_INPUT_LINES='^(#[0-9]+[[:space:]]+(NEW|REDUCE|pulse) |[[:space:]]+NEW_FUNC)'
# Debug assertions on: an arithmetic overflow is a finding, as in tests.
BUILD_FLAGS=(--debug-assertions)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# libFuzzer options of `target`. The rpc target runs a multi-threaded server:
# its allocations outlive each input by design, so per-input leak checks
# (which also scan the whole heap, dividing the speed by three) are off;
# its memory (ASan's quarantine, the database's cache) grows over a long
# run, hence 4 GB instead of the default 2 GB.
options_of() {
    case "$1" in
        rpc) echo "-rss_limit_mb=4096 -detect_leaks=0 -timeout=60" ;;
        *) echo "-rss_limit_mb=2048 -timeout=10" ;;
    esac
}

case "${1:-}" in
    --seeds)
        cargo fuzz build "${BUILD_FLAGS[@]}"
        for target in "${ALL_TARGETS[@]}"; do
            rm -rf "corpus/$target"
            TESSERA_FUZZ_WRITE_SEEDS="corpus/$target" \
                cargo fuzz run "${BUILD_FLAGS[@]}" "$target" -- -runs=0
            echo "corpus/$target: $(find "corpus/$target" -type f | wc -l) seeds"
        done
        exit 0
        ;;
    --replay)
        target=$2
        # shellcheck disable=SC2046
        exec cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "$3" -- $(options_of "$target")
        ;;
esac

seconds=${1:-60}
shift || true
if [[ $# -gt 0 ]]; then targets=("$@"); else targets=("${ALL_TARGETS[@]}"); fi

cargo fuzz build "${BUILD_FLAGS[@]}"
failed=()
for target in "${targets[@]}"; do
    work="$CARGO_TARGET_DIR/corpus/$target"
    mkdir -p "$work"
    echo "== fuzz $target for ${seconds}s"
    # The first corpus directory receives new inputs; the committed seeds
    # are only read. libFuzzer's per-input lines are left out; its start,
    # its final statistics and any crash report are kept.
    # shellcheck disable=SC2046
    if ! cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 $(options_of "$target") \
        2> >(grep --line-buffered -Ev "$PER_INPUT_LINES" >&2); then
        failed+=("$target")
    fi
done
# The rpc target's SQLite directories of processes that are gone (a
# fuzzing process ends without destructors; the next one would remove them).
for dir in /dev/shm/tessera-fuzz-* "${TMPDIR:-/tmp}"/tessera-fuzz-*; do
    if [[ -d $dir && ! -d /proc/${dir##*-} ]]; then rm -rf "$dir"; fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
