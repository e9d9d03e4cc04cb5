#!/usr/bin/env bash
# One command for the tests: set up .venv (.[test]) and the server packages,
# then run the whole suite (arguments go to pytest).  The tests start their own
# Mosquitto, InfluxDB and PostgreSQL on free loopback ports.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh test

args=(-p no:cacheprovider)  # no .pytest_cache left in the checkout
case "${CI:-}" in
    true | 1 | yes) args+=(--durations=15) ;;
esac

echo "==> pytest ${args[*]} $*"
status=0
"$ROOT/.venv/bin/python" -m pytest "${args[@]}" "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "test.sh: pytest collected no tests: that is a failure" >&2
fi
exit "$status"
