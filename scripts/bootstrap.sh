#!/usr/bin/env bash
# Set up this checkout: a Python >= 3.11 virtualenv in .venv with the package
# installed editable, and (for "test") the Debian packages of the servers the
# tests start themselves.  Idempotent; a re-run with nothing to do is fast.
#
#   scripts/bootstrap.sh demo   # .[demo]: edge + gateway + simulators
#   scripts/bootstrap.sh test   # .[test] + mosquitto, influxdb, postgresql, chromium
set -euo pipefail

EXTRA="${1:-demo}"
case "$EXTRA" in
    demo | test) ;;
    *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
LOG="$(mktemp "${TMPDIR:-/tmp}/diatabase-bootstrap.XXXXXX")"
trap 'rm -f "$LOG"' EXIT

step() { printf '==> %s\n' "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

# run a command quietly; on failure show the end of its output
quiet() {
    if ! "$@" >>"$LOG" 2>&1; then
        printf 'bootstrap: failed: %s\n' "$*" >&2
        tail -n 40 "$LOG" >&2
        exit 1
    fi
}

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
APT_UPDATED=0
apt_install() {
    # apt_install PKG...: root only; runs apt-get update once per bootstrap
    export DEBIAN_FRONTEND=noninteractive
    if [ "$APT_UPDATED" -eq 0 ]; then
        step "apt-get update"
        quiet apt-get update -q
        APT_UPDATED=1
    fi
    step "apt-get install $*"
    # Installing mosquitto/postgresql may start their system services on the
    # default ports; harmless, the tests start their own on free ports.
    quiet apt-get install -y -q --no-install-recommends "$@"
}

# -- Debian packages for the test servers ---------------------------------------
have_postgres() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && return 0
    done
    command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1
}
have() { PATH="$PATH:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1; }

if [ "$EXTRA" = test ]; then
    missing=()
    have mosquitto || missing+=(mosquitto)
    have influxd || missing+=(influxdb)
    have_postgres || missing+=(postgresql)
    { have chromium || [ -x /usr/bin/chromium ]; } || missing+=(chromium fonts-liberation)
    if [ "${#missing[@]}" -eq 0 ]; then
        step "server packages present (mosquitto, influxdb, postgresql, chromium)"
    elif [ "$IS_ROOT" -eq 1 ] && command -v apt-get >/dev/null 2>&1; then
        apt_install "${missing[@]}"
    else
        die "missing server packages; run: sudo apt-get install -y --no-install-recommends ${missing[*]}"
    fi
    # Optional: VictoriaMetrics (tests that use it skip without it).  Installed
    # only when apt already knows the package, so a re-run never has to update.
    if ! have victoria-metrics && [ "$IS_ROOT" -eq 1 ] && command -v apt-get >/dev/null 2>&1 \
        && apt-cache show victoria-metrics >/dev/null 2>&1; then
        step "apt-get install victoria-metrics (optional)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            victoria-metrics >>"$LOG" 2>&1 \
            || step "victoria-metrics not installed (optional; its tests skip)"
    fi
fi

# -- Python >= 3.11 ------------------------------------------------------------------
py_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; }

find_python() {
    local candidate path
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        path="$(command -v "$candidate" 2>/dev/null)" || continue
        if py_ok "$path"; then
            printf '%s\n' "$path"
            return 0
        fi
    done
    return 1
}

if [ -x "$VENV/bin/python" ] && py_ok "$VENV/bin/python"; then
    step "virtualenv .venv ($("$VENV/bin/python" -c 'import platform; print(platform.python_version())'))"
else
    PY="$(find_python)" || die "Python >= 3.11 not found (tried \$PYTHON, python3.13, python3.12, python3.11, python3); install it, e.g. sudo apt-get install python3 python3-venv"
    if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if [ "$IS_ROOT" -eq 1 ] && command -v apt-get >/dev/null 2>&1; then
            apt_install python3-venv
        else
            die "$PY cannot create virtualenvs; run: sudo apt-get install -y python3-venv"
        fi
    fi
    step "creating .venv with $PY ($("$PY" -c 'import platform; print(platform.python_version())'))"
    rm -rf "$VENV"
    quiet "$PY" -m venv "$VENV"
fi

# -- the package and its extras --------------------------------------------------------
# The stamp records what was installed: extra, a hash of pyproject.toml and the
# interpreter.  "test" includes everything "demo" needs.
fingerprint() {
    {
        cat pyproject.toml
        "$VENV/bin/python" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}
FP="$(fingerprint)"
stamp_ok() {
    [ -f "$VENV/.bootstrap-$1" ] && [ "$(cat "$VENV/.bootstrap-$1")" = "$FP" ] \
        && "$VENV/bin/python" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("gateway") else 1)' >/dev/null 2>&1
}

if stamp_ok "$EXTRA" || { [ "$EXTRA" = demo ] && stamp_ok test; }; then
    step "Python dependencies up to date (.[$EXTRA])"
else
    step "upgrading pip"
    quiet "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
    step "pip install -e .[$EXTRA] (a few minutes on a fresh checkout)"
    quiet "$VENV/bin/python" -m pip install --disable-pip-version-check -q -e ".[$EXTRA]"
    printf '%s\n' "$FP" >"$VENV/.bootstrap-$EXTRA"
fi
step "ready"
