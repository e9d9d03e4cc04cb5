#!/usr/bin/env bash
# One command for the demo: set up .venv (.[demo]) and run it; arguments go to
# `diatabase demo`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh demo
exec "$ROOT/.venv/bin/diatabase" demo "$@"
