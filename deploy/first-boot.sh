#!/bin/sh
# Creates, once, the .env that Tessera and its callers share (compose
# `env_file: .env`, the systemd unit's TESSERA_SERVICE_TOKENS_FILE,
# `kubectl create secret --from-env-file=`), holding a 256-bit
# TESSERA_SERVICE_TOKEN_<NAME> for SCHEDULER and for every NAME given. Safe
# to run on every boot: values that exist are kept, missing ones are added.
# Never prints a secret.
#
# Usage: first-boot.sh [-f FILE] [-g GROUP] [--postgres] [--rotate NAME]... [--retire NAME]... [NAME]...
#
#   -f, --env-file FILE  the file to create or update (default ./.env)
#   -g, --group GROUP    let GROUP read the file (mode 0640): the group a
#                        service reads it with (systemd SupplementaryGroups=).
#                        An existing file keeps its group and mode 0640 when
#                        rewritten, with or without this option.
#   --postgres           also keep a POSTGRES_PASSWORD (for deploy/compose)
#   --rotate NAME        put a new secret before the current one: `new,old`.
#                        Tessera accepts both; callers send the first one.
#   --retire NAME        drop the previous secret of NAME (after the callers
#                        moved to the new one): `new,old` becomes `new`.
#
# Secrets come from `tessera gen-secret` ($TESSERA_BIN, or `tessera` on the
# PATH) when available, else from 32 bytes of /dev/urandom as 64 hex digits.
set -eu

# Everything this script creates is private from its first byte.
umask 077

PREFIX=TESSERA_SERVICE_TOKEN_

say() { printf 'first-boot: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

usage() {
    sed -n '2,/^set -eu$/{/^set -eu$/d;s/^# \{0,1\}//;p;}' "$0"
}

# Upper-cases NAME (dashes become underscores), accepts the full variable name
# too, and refuses anything but [A-Z0-9_].
normalize() {
    name=$(printf '%s' "$1" | tr '[:lower:]-' '[:upper:]_')
    name=${name#"$PREFIX"}
    case $name in
        '' | [0-9]* | *[!A-Z0-9_]*) die "not a service name: '$1' (use letters, digits, _)" ;;
    esac
    printf '%s\n' "$name"
}

env_file=./.env
group=
group_given=0
postgres=0
names=SCHEDULER
rotate=
retire=
while [ $# -gt 0 ]; do
    case $1 in
        -f | --env-file)
            [ $# -ge 2 ] || die "$1 needs a file"
            env_file=$2
            shift 2
            ;;
        --env-file=*)
            env_file=${1#*=}
            shift
            ;;
        -g | --group)
            [ $# -ge 2 ] || die "$1 needs a group"
            group=$2
            group_given=1
            shift 2
            ;;
        --group=*)
            group=${1#*=}
            group_given=1
            shift
            ;;
        --postgres)
            postgres=1
            shift
            ;;
        --rotate | --retire)
            [ $# -ge 2 ] || die "$1 needs a NAME"
            name=$(normalize "$2")
            if [ "$1" = --rotate ]; then rotate="$rotate $name"; else retire="$retire $name"; fi
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        --)
            shift
            break
            ;;
        -*) die "unknown option: $1 (see --help)" ;;
        *)
            names="$names $(normalize "$1")"
            shift
            ;;
    esac
done
for arg in "$@"; do
    names="$names $(normalize "$arg")"
done
[ -n "$env_file" ] || die "empty file name"
# Renaming the new content into place would replace a link with a file
# (and its mode would be read from the link): name the file itself.
[ ! -L "$env_file" ] || die "$env_file is a symbolic link; give the file it points to"
if [ "$group_given" -eq 1 ]; then
    [ -n "$group" ] || die "empty group name"
    # chgrp takes any number as a gid: a typo would give the file to nobody.
    if command -v getent >/dev/null 2>&1 && ! getent group "$group" >/dev/null; then
        die "no group '$group' on this system"
    fi
fi

# A fresh secret on standard output (captured, never shown).
gen_secret() {
    bin=${TESSERA_BIN:-}
    if [ -z "$bin" ] && command -v tessera >/dev/null 2>&1; then
        bin=tessera
    fi
    secret=
    if [ -n "$bin" ]; then
        secret=$("$bin" gen-secret 2>/dev/null 3>&-) || secret=
    fi
    case $secret in
        '' | *[!A-Za-z0-9_]*)
            secret=$(od -An -v -N32 -tx1 /dev/urandom | tr -d ' \n')
            ;;
    esac
    [ "${#secret}" -ge 32 ] || die "could not generate a secret"
    printf '%s\n' "$secret"
}

hex_secret() {
    secret=$(od -An -v -N32 -tx1 /dev/urandom | tr -d ' \n')
    [ "${#secret}" -eq 64 ] || die "could not read /dev/urandom"
    printf '%s\n' "$secret"
}

# The value of VAR in the file being built (the last assignment wins, as in
# a shell), or nothing.
value_of() {
    sed -n "s/^$1=//p" "$tmp" | tail -n 1
}

has_var() {
    grep -q "^$1=" "$tmp"
}

# `a, b` → `a` (blanks and quotes removed).
first_of() {
    first=${1%%,*}
    printf '%s' "$first" | tr -d " \t\r\"'"
}

# `-rw-r----- 0`: the mode column of `ls -l` and the numeric group.
mode_and_group() {
    # shellcheck disable=SC2012
    ls -lnd -- "$1" | awk '{print $1, $4}'
}

in_list() {
    case " $2 " in
        *" $1 "*) return 0 ;;
        *) return 1 ;;
    esac
}

dir=$(dirname -- "$env_file")
[ -d "$dir" ] || mkdir -p -- "$dir"

# Build the new content next to the file, then rename it into place: a crash
# or a reboot never leaves a half-written file. mktemp makes a new file (0600)
# under a name nobody can guess or have planted, and everything is written
# through the one descriptor opened on it right away.
tmp=$(mktemp "$dir/$(basename -- "$env_file").tmp.XXXXXXXXXX") ||
    die "cannot create a temporary file in $dir"
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
exec 3>>"$tmp"

created=0
if [ -e "$env_file" ]; then
    [ -f "$env_file" ] || die "$env_file is not a regular file"
    # Only the mode column of `ls -l` is read (POSIX has no stat).
    # shellcheck disable=SC2012
    perms=$(ls -ld -- "$env_file" | cut -c5-10)
    case $perms in
        ------) ;;
        r-----)
            # Readable by its group on purpose (see --group): kept so.
            [ -n "$group" ] || group=$(mode_and_group "$env_file" | cut -d' ' -f2)
            ;;
        *)
            say "warning: $env_file was readable by others or writable by its group; its mode is now 0600"
            chmod go-rwx -- "$env_file"
            ;;
    esac
    # Copy, rewriting the lines of the names to rotate or retire.
    while IFS= read -r line || [ -n "$line" ]; do
        for name in $rotate $retire; do
            case $line in
                "$PREFIX$name="*)
                    old=$(first_of "${line#*=}")
                    if in_list "$name" "$rotate"; then
                        new=$(gen_secret)
                        if [ -n "$old" ]; then line="$PREFIX$name=$new,$old"; else line="$PREFIX$name=$new"; fi
                        say "rotated $PREFIX$name: new secret first, previous second;" \
                            "reload Tessera (SIGHUP with TESSERA_SERVICE_TOKENS_FILE, else restart)," \
                            "then its callers; run --retire $name once 'tessera secrets status'" \
                            "says the previous secret is safe to retire"
                    elif [ "$old" != "${line#*=}" ]; then
                        line="$PREFIX$name=$old"
                        say "retired the previous secret of $PREFIX$name"
                    fi
                    ;;
            esac
        done
        printf '%s\n' "$line" >&3
    done <"$env_file"
else
    created=1
    {
        echo "# Tessera service secrets, written by deploy/first-boot.sh. Keep private."
        echo "# ${PREFIX}<NAME>=<current>[,<previous>]: Tessera accepts both,"
        echo "# callers send the first. Rotate with: first-boot.sh --rotate <NAME>"
    } >&3
fi

for name in $retire; do
    has_var "$PREFIX$name" || say "note: $PREFIX$name is not set; nothing to retire"
done

for name in $names $rotate; do
    if has_var "$PREFIX$name"; then
        if [ -z "$(value_of "$PREFIX$name" | tr -d " \t\r,\"'")" ]; then
            say "note: $PREFIX$name is empty (disabled); left as it is"
        fi
        continue
    fi
    # Assigned first: a failure inside $(...) must stop the script.
    secret=$(gen_secret)
    printf '%s%s=%s\n' "$PREFIX" "$name" "$secret" >&3
    say "added $PREFIX$name"
done

if [ "$postgres" -eq 1 ] && ! has_var POSTGRES_PASSWORD; then
    secret=$(hex_secret)
    printf 'POSTGRES_PASSWORD=%s\n' "$secret" >&3
    say "added POSTGRES_PASSWORD"
fi

exec 3>&-
mode=0600
if [ -n "$group" ]; then
    # The group first, then its read bit: no other group ever may read it.
    chgrp -- "$group" "$tmp" || die "cannot give $env_file to group '$group'"
    chmod 0640 -- "$tmp"
    mode="0640, group $group"
fi
if [ "$created" -eq 1 ]; then
    mv -f -- "$tmp" "$env_file"
    say "created $env_file (mode $mode)"
elif cmp -s -- "$tmp" "$env_file" && [ "$(mode_and_group "$tmp")" = "$(mode_and_group "$env_file")" ]; then
    say "$env_file is up to date; existing secrets kept"
else
    mv -f -- "$tmp" "$env_file"
    say "updated $env_file; existing secrets kept"
fi
