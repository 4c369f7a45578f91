#!/usr/bin/env bash
# Smoke-test a regular (non-editable) install: build ragenv's wheel, install it with --no-deps into
# a fresh virtual environment holding the locked packages (as scripts/setup.sh installs them), then,
# from outside the checkout, make every registered environment and evaluate BM25 on 3 questions.
# It catches what an editable install hides: a subpackage or data file missing from the wheel.
# Needs ./.venv (scripts/setup.sh) to build the wheel, and the data (RAGENV_DATA, default ../shared/data).
# Install output goes to a log; on failure its last lines are printed and the temp folder is kept
# (KEEP_SMOKE=1 keeps it on success too). About 4-5 minutes on 2 CPU cores, most of it pip and the LLM.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
if [ -z "${RAGENV_DATA:-}" ] && [ -d ../shared/data ]; then
    RAGENV_DATA=$(cd ../shared/data && pwd)
fi
[ -n "${RAGENV_DATA:-}" ] || { echo "smoke: set RAGENV_DATA to the data folder" >&2; exit 1; }
[ -x .venv/bin/python ] || { echo "smoke: no .venv here: run scripts/setup.sh first" >&2; exit 1; }
# The same interpreter as .venv (the lock was made for it), unless PYTHON says otherwise.
PYTHON=${PYTHON:-$(.venv/bin/python -c 'import sys; print(sys._base_executable)')}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ragenv-smoke.XXXXXX")
LOG="$tmp/smoke.log"
STAGE_PREFIX=smoke
source scripts/lib.sh
LOCK="$REPO/requirements.lock"
trap '[ $? -eq 0 ] || echo "smoke: FAILED; temp folder kept for a look: $tmp" >&2' EXIT
export RAGENV_DATA RAGENV_CACHE="$tmp/cache" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
started=$SECONDS

stage "wheel" .venv/bin/python -m pip wheel --no-deps -w "$tmp/dist" .
wheel=$(ls "$tmp"/dist/ragenv-*.whl)
stage "fresh virtual environment ($("$PYTHON" --version 2>&1 | head -n 1))" "$PYTHON" -m venv "$tmp/venv"
install_started=$SECONDS
install_locked "$tmp/venv"
stage "$(basename "$wheel") (--no-deps)" "$tmp/venv/bin/python" -m pip install --no-deps "$wheel"
installed_in=$((SECONDS - install_started))
stage "pip check" pip_check "$tmp/venv"

cd "$tmp"  # away from the checkout: only the installed wheel can be imported
export SMOKE_VENV="$tmp/venv" SMOKE_LOCK="$LOCK"
stage "import ragenv, ragenv doctor, gym.make every environment" "$tmp/venv/bin/python" -c '
import inspect, os, time
from pathlib import Path

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

import ragenv
from ragenv.doctor import check_environment, render

venv = Path(os.environ["SMOKE_VENV"]).resolve()
where = Path(ragenv.__file__).resolve()
assert venv in where.parents, f"ragenv was imported from {where}, not from the wheel in {venv}"
print("ragenv", ragenv.__version__, "from", where)
assert check_environment().lock_path is None, "a wheel install has no lock file of its own"
report = check_environment(Path(os.environ["SMOKE_LOCK"]))
print("\n".join(render(report)))
assert report.ok, "the fresh environment differs from requirements.lock"

ids = sorted(i for i, spec in gym.registry.items()
             if isinstance(spec.entry_point, str) and spec.entry_point.startswith("ragenv."))
assert {"RAGRetrieval-v0", "SmartRAG-v0", "SmartRAGText-v0"} <= set(ids), ids
RESET_CALLS_THE_LLM = {"SmartRAG-v0"}  # its reset writes a query with the frozen LLM; evaluate covers the LLM
for env_id in ids:
    start = time.time()
    params = inspect.signature(load_env_creator(gym.registry[env_id].entry_point)).parameters
    kwargs = {"dataset": "nq", "split": "test", "llm": "smollm2-135m", "limit": 2}
    if "features" in params:
        kwargs["features"] = False  # no dense embeddings of the corpus
    env = gym.make(env_id, **kwargs)
    done = "made"
    if env_id not in RESET_CALLS_THE_LLM:
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs), f"{env_id}: reset gave an observation outside its space"
        done = "made and reset"
    env.close()
    print(f"{env_id}: {done} in {time.time() - start:.1f} s")
'
stage "ragenv evaluate (RAGRetrieval-v0, bm25s, nq test, 3 questions, smollm2-135m)" \
    "$tmp/venv/bin/ragenv" evaluate --env RAGRetrieval-v0 --agent bm25s --dataset nq --split test --limit 3 \
    --llm smollm2-135m --output "$tmp/eval.json"
stage "evaluation result" "$tmp/venv/bin/python" -c '
import json, math, sys
result = json.load(open(sys.argv[1]))
assert result["n"] == 3 and result["agent"] == "bm25s", result
assert all(math.isfinite(v) for v in result["metrics"].values() if isinstance(v, float)), result["metrics"]
print("reward", result["metrics"]["reward"])
' "$tmp/eval.json"
grep -E '^(ragenv |RAGRetrieval|SmartRAG|[0-9]+ of [0-9]+ match|ok: |reward )' "$LOG" | sed 's/^/  /'
cd "$REPO"
if [ -z "${KEEP_SMOKE:-}" ]; then  # KEEP_SMOKE=1 keeps the wheel, the environment and the log
    printf 'smoke: removing the temp folder ... '
    removing=$SECONDS
    rm -rf "$tmp"
    echo "done ($((SECONDS - removing)) s)"
else
    echo "smoke: temp folder kept: $tmp"
fi
echo "smoke: the wheel works ($((SECONDS - started)) s in all; the fresh environment installed in ${installed_in} s)"
