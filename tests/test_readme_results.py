"""Every result table in the README and docs/ equals what its command prints from the committed result files.

A table is marked by the comment line ``<!-- made by: COMMAND -->`` right above it; COMMAND
reads committed files only (``ragenv compare`` over evaluation results or leaderboard
entries, ``scripts/numerics_agreement.py compare``, ``benchmarks/scale_ladder.py table`` and
``extrapolate`` over the scale ladder's result files), so this runs without a model.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # model-free: the fast tier

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKER = re.compile(r"^<!-- made by: (.+) -->$")
ALLOWED = ("ragenv compare ", "python scripts/numerics_agreement.py compare ",
           "python scripts/numerics_agreement.py speed-table ", "python benchmarks/scale_ladder.py table ",
           "python benchmarks/scale_ladder.py extrapolate ")


def marked_tables() -> list[tuple[str, list[str]]]:
    lines = [line for document in DOCUMENTS for line in document.read_text(encoding="utf-8").splitlines() + [""]]
    tables = []
    for i, line in enumerate(lines):
        found = MARKER.match(line.strip())
        if found:
            table = []
            for row in lines[i + 1:]:
                if not row.startswith("|"):
                    break
                table.append(row)
            tables.append((found.group(1), table))
    return tables


def run(command: str) -> list[str]:
    assert command.startswith(ALLOWED), f"README table command must read committed files only: {command}"
    words = shlex.split(command)
    argv = [sys.executable, "-m", "ragenv.cli", *words[1:]] if words[0] == "ragenv" else [sys.executable, *words[1:]]
    expanded = []
    for word in argv:  # expand globs as the shell would, sorted
        matches = sorted(ROOT.glob(word)) if any(c in word for c in "*?[") else None
        expanded += [str(m.relative_to(ROOT)) for m in matches] if matches else [word]
    done = subprocess.run(expanded, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return [line for line in done.stdout.splitlines() if line.startswith("|")]


def test_the_documents_have_marked_result_tables():
    commands = [command for command, _ in marked_tables()]
    assert len(commands) >= 3, commands


@pytest.mark.parametrize("command,table", marked_tables(), ids=lambda value: value if isinstance(value, str) else "")
def test_readme_table_equals_its_command_output(command, table):
    assert table, f"no table under the marker of {command}"
    assert table == run(command)


def test_committed_result_files_name_questions_by_id_only():
    """No committed result file copies a dataset: per-question records carry ids, never question texts or answers.

    (``ragenv evaluate --texts`` adds them for local analysis; such a file must not be committed.)
    """
    from ragenv.evaluate import TEXT_FIELDS

    tracked = subprocess.run(["git", "ls-files", "*.json", "*.jsonl"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    checked = 0
    for name in tracked:
        text = (ROOT / name).read_text(encoding="utf-8")
        documents = [json.loads(line) for line in text.splitlines() if line.strip()] if name.endswith(".jsonl") \
            else [json.loads(text)]
        for document in documents:
            records = document.get("per_question") if isinstance(document, dict) else None
            if not records:
                continue
            checked += 1
            assert all(isinstance(r.get("question_id"), str) for r in records), name
            found = sorted({field for r in records for field in TEXT_FIELDS if field in r})
            assert not found, f"{name}: per-question records carry {found}"
    assert checked >= 20, checked  # the demo, scale, numerics and leaderboard results are all found
