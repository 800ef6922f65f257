#!/usr/bin/env bash
# Static checks of deploy/ and of every shell script, for .ci/run. No
# container engine or cluster is needed: each file is checked by the tool
# that understands it. (deploy/smoke.sh, also run by .ci/run, builds the
# image and runs it; ShellCheck covers it here like every script.)
#
#   - ShellCheck: every *.sh and every sh/bash script (e.g. .ci/run)
#   - hadolint: deploy/docker/Dockerfile*
#   - kubernetes-validate: deploy/k8s/**/*.yaml, strict, against the oldest
#     and newest Kubernetes supported (1.30 for the preStop sleep)
#   - systemd-analyze verify: deploy/systemd/*.service (skipped where absent)
#   - check_manifests.py: compose files, cross-file consistency, and probes
#     (native gRPC for plaintext servers, `tessera health` execs for TLS)
#   - first-boot.sh parses under dash (a strict POSIX sh)
#
# The tools come from PyPI (pinned in deploy/check-requirements.txt) into a
# virtualenv cached under ${TESSERA_CI_CACHE:-~/.cache}/tessera-ci-venv,
# keyed on the pins and the Python version, so only the first run downloads.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== deploy/check.sh"
started=$SECONDS
requirements=deploy/check-requirements.txt
cache_root="${TESSERA_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}}/tessera-ci-venv"
python=${PYTHON:-python3}
key=$({ cat "$requirements"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
venv="$cache_root/$key"

if [ ! -f "$venv/.complete" ]; then
    echo "-- installing the check tools into $venv"
    mkdir -p "$cache_root"
    partial="$venv.partial.$$"
    rm -rf "$partial"
    trap 'rm -rf "$partial"' EXIT
    "$python" -m venv "$partial"
    "$partial/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input --only-binary=:all: -r "$requirements"
    touch "$partial/.complete"
    # Venvs of older pins go; a concurrent run that finished first wins.
    find "$cache_root" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name '*.partial.*' \
        -exec rm -rf {} +
    if ! mv -T "$partial" "$venv" 2>/dev/null; then
        rm -rf "$partial"
    fi
    trap - EXIT
fi
bin="$venv/bin"
failed=0
step() { echo "-- $*"; }
fail() {
    echo "FAILED: $*" >&2
    failed=1
}

# Every tracked or new (not ignored) file: *.sh, or a script whose first line
# runs sh, bash or dash.
list_files() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -z --cached --others --exclude-standard
    else
        find . -path ./target -prune -o -path ./.git -prune -o -type f -print0 | sed -z 's#^\./##'
    fi
}
scripts=()
while IFS= read -r -d '' file; do
    [ -f "$file" ] || continue
    case $file in
        *.sh) scripts+=("$file") ;;
        *)
            if head -n 1 -- "$file" 2>/dev/null | grep -Eq '^#!.*[/ ](ba|da)?sh([[:space:]]|$)'; then
                scripts+=("$file")
            fi
            ;;
    esac
done < <(list_files)

step "shellcheck (${#scripts[@]} scripts: ${scripts[*]})"
if [ "${#scripts[@]}" -gt 0 ]; then
    "$bin/shellcheck" --version | sed -n 's/^version: /   version /p'
    "$bin/shellcheck" --severity=style --external-sources -- "${scripts[@]}" || fail shellcheck
fi

dockerfiles=(deploy/docker/Dockerfile*)
step "hadolint (${#dockerfiles[@]} Dockerfiles)"
"$bin/hadolint" --no-color --failure-threshold info -- "${dockerfiles[@]}" || fail hadolint

manifests=()
while IFS= read -r -d '' file; do manifests+=("$file"); done \
    < <(find deploy/k8s -type f \( -name '*.yaml' -o -name '*.yml' \) -print0 | sort -z)
for version in 1.30 1.37; do
    step "kubernetes-validate --strict -k $version (${#manifests[@]} manifests)"
    "$bin/python" -m kubernetes_validate --strict --quiet -k "$version" "${manifests[@]}" ||
        fail "kubernetes-validate $version"
done

step "systemd-analyze verify"
if command -v systemd-analyze >/dev/null 2>&1; then
    # The unit names /usr/local/bin/tessera, absent here: verify a copy that
    # points at a stand-in executable. verify exits 0 on unknown keys and
    # bad values, so any message about the unit fails the check.
    scratch=$(mktemp -d)
    printf '#!/bin/sh\nexit 0\n' >"$scratch/tessera"
    chmod +x "$scratch/tessera"
    for unit in deploy/systemd/*.service; do
        copy="$scratch/$(basename "$unit")"
        sed "s#/usr/local/bin/tessera#$scratch/tessera#g" "$unit" >"$copy"
        output=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$copy" 2>&1) || fail "systemd-analyze verify $unit"
        if printf '%s\n' "$output" | grep -F -- "$(basename "$unit")" >&2; then
            fail "systemd-analyze verify $unit"
        fi
    done
    rm -rf "$scratch"
else
    echo "   skipped: systemd-analyze is not installed"
fi

step "compose files and cross-file checks"
"$bin/python" deploy/check_manifests.py . || fail check_manifests.py

step "first-boot.sh is POSIX sh"
for shell in dash sh; do
    if command -v "$shell" >/dev/null 2>&1; then
        "$shell" -n deploy/first-boot.sh || fail "$shell -n deploy/first-boot.sh"
        "$shell" deploy/first-boot.sh --help >/dev/null || fail "$shell deploy/first-boot.sh --help"
        break
    fi
done

elapsed=$((SECONDS - started))
if [ "$failed" -ne 0 ]; then
    echo "deploy/check.sh: FAILED (${elapsed}s)" >&2
    exit 1
fi
echo "deploy/check.sh: all checks passed (${elapsed}s)"
