"""Plain helpers the test modules share (constants and functions; the fixtures are in conftest.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_LLM = "smollm2-135m"  # the fast model; Gemma is used where an issue asks for it
N_QUESTIONS = 4  # SmartRAG questions per split in the tests: every reachable state of each is computed once


def private_cache(root: Path) -> dict:
    """The environment of a run with an empty reward cache at ``root`` that shares the session's converted
    models and indexes (``root/models`` and ``root/indexes`` link to them), so models convert once."""
    root.mkdir(parents=True, exist_ok=True)
    shared = Path(os.environ["RAGENV_CACHE"])
    for name in ("models", "indexes"):
        (shared / name).mkdir(parents=True, exist_ok=True)
        if not (root / name).exists():
            (root / name).symlink_to(shared / name, target_is_directory=True)
    return {**os.environ, "RAGENV_CACHE": str(root)}


def run_cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``ragenv ARGS`` in a fresh process, as a user runs it."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "ragenv.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """The command failed with exactly one ``error:`` line holding every needle, and no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
