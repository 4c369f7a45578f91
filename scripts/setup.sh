#!/usr/bin/env bash
# Set up ragenv in ./.venv from scratch (CPU) with the exact versions in requirements.lock,
# so every machine gets the same packages and the same numbers. Safe to run again.
# pip's output goes to .venv/setup.log; on failure the log's last lines are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
LOG="$(pwd)/.venv/setup.log"
source scripts/lib.sh
mkdir -p .venv
: > "$LOG"
started=$SECONDS
if [ ! -x .venv/bin/python ]; then
    stage "virtual environment (.venv, $("$PYTHON" --version 2>&1))" "$PYTHON" -m venv .venv
fi
install_locked .venv
# ragenv itself, editable; its dependencies and test and lint extras (pytest, mypy, ruff) are already in the lock.
stage "ragenv (editable, --no-deps)" .venv/bin/python -m pip install --no-deps -e .
stage "pip check" pip_check .venv
# The leaderboard's browser test drives Debian's chromium through Playwright (never `playwright install`);
# it skips without chromium. Install it when we are root and it is missing.
if [ "$(id -u)" -eq 0 ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    printf 'setup: chromium (apt-get) ... '
    if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >> "$LOG" 2>&1; then
        echo "done"
    else
        echo "skipped"
        echo "warning: could not install chromium; the leaderboard browser test will be skipped (see $LOG)" >&2
    fi
fi
echo "ragenv installed in $(pwd)/.venv in $((SECONDS - started)) s (log: $LOG)"
