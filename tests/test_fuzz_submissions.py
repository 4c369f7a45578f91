"""scripts/fuzz_submissions.py: a short run finds no crash, and a crash would be caught and reported."""
from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # model-free: the fast tier

REPO = Path(__file__).resolve().parents[1]

SCRIPT = REPO / "scripts" / "fuzz_submissions.py"


def load_fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_submissions", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_few_hundred_mutations_never_crash_the_validator():
    result = subprocess.run([sys.executable, str(SCRIPT), "--iterations", "300", "--seed", "7", "--file-every", "10"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert '"crashed": 0' in summary and '"iterations": 300' in summary
    assert '"accepted": 0,' not in summary and '"rejected": 0,' not in summary  # both outcomes occur


def test_a_crash_is_counted_saved_and_reproducible(tmp_path, monkeypatch):
    fuzzer = load_fuzzer()

    def fragile(data, source="submission"):  # a validator with a bug: not every failure is a SubmissionError
        if source == "fuzz.json" and (b"\x00" in data or len(data) % 7 == 0):  # fuzzed inputs only, not the seeds
            raise KeyError("boom")
        return original(data, source)

    original = fuzzer.parse_submission
    monkeypatch.setattr(fuzzer, "parse_submission", fragile)
    out = io.StringIO()
    result = fuzzer.fuzz(200, 3, file_every=0, crash_dir=tmp_path, out=out)
    assert result["crashed"] == 1
    saved = list(tmp_path.glob("crash-seed3-iter*.json"))
    assert len(saved) == 1 and "CRASH at iteration" in out.getvalue() and "reproduce with" in out.getvalue()
    data = saved[0].read_bytes()
    assert b"\x00" in data or len(data) % 7 == 0
    assert fuzzer.main(["--iterations", "0"]) == 0
