"""Where a result came from: code version, library versions and the numeric setting.

Every ``evaluate`` result, leaderboard entry and ``bench`` report carries
:func:`provenance`, so a figure can be traced to the commit, the installed versions and
the hardware path that produced it (and a difference between two machines explained).
"""
from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

from ragenv.numerics import NumericSetting, cpu_model

LIBRARIES = ("torch", "transformers", "numpy", "gymnasium")


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The checkout's commit (``+dirty`` with uncommitted changes to tracked files); None outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that can move a figure."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(numerics: NumericSetting | None = None) -> dict:
    """ragenv version and commit, library versions, Python, CPU, and the LLM's numeric setting if given."""
    from ragenv import __version__

    record: dict[str, Any] = {"ragenv": __version__, "git_commit": git_commit(), **library_versions(),
                              "python": platform.python_version(), "cpu": cpu_model()}
    if numerics is not None:
        record["numerics"] = numerics.describe()
    return record


def provenance_line(record: dict) -> str:
    """One human-readable line of a provenance record (for tables and the leaderboard page)."""
    numerics = record.get("numerics") or {}
    setting = (f"{numerics.get('dtype')} on {numerics.get('device')} ({numerics.get('hardware')})"
               + ("" if numerics.get("canonical", True) else ", NON-CANONICAL")) if numerics else "numerics unknown"
    full = record.get("git_commit") or "no git"
    commit = full[:12] + ("+dirty" if full.endswith("+dirty") else "")
    return (f"{setting}; ragenv {record.get('ragenv')} @ {commit}; torch {record.get('torch')}, "
            f"transformers {record.get('transformers')}, numpy {record.get('numpy')}")
