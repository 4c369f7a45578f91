"""Run journals: what an interrupted job had finished, so that a rerun resumes instead of restarting.

A journal is an append-only JSON-lines file under ``<cache>/journals``, named by a digest of
the job's identity (everything that determines its results: configuration, dataset and
LLM fingerprints, agent). Each finished unit of work (an evaluated question, a precomputed
batch) is appended and flushed to disk before the job moves on, so a job killed at any
moment (SIGKILL included) loses at most the unit in flight. A torn last line (the kill
arrived mid-write) is ignored. The job deletes its journal when it completes.

The reward cache makes the LLM work itself resumable; the journal adds the job's own
progress, so that the rerun can say it resumed and skip finished work outright.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ragenv import settings
from ragenv.atomic import atomic_write


def identity_digest(identity: dict) -> str:
    """A stable digest of a job identity (JSON with sorted keys)."""
    blob = json.dumps(identity, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class RunJournal:
    """The journal of one job identity: ``load`` what a previous attempt finished, ``append``, ``finish``."""

    def __init__(self, kind: str, identity: dict, folder: str | Path | None = None):
        self.kind = kind
        self.identity = identity
        folder = Path(folder) if folder is not None else settings.cache_subdir("journals")
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{kind}-{identity_digest(identity)}.jsonl"

    def load(self) -> list[dict]:
        """The records a previous, unfinished attempt wrote (empty when there was none)."""
        if not self.path.exists():
            return []
        records = []
        with self.path.open("r", encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break  # torn write from a killed process: the unit was in flight
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        header, *rest = records or [None]
        if not isinstance(header, dict) or header.get("identity") != json.loads(json.dumps(self.identity, default=str)):
            return []  # not ours (digest collision or older format): start afresh
        return rest

    def start(self, resumed: list[dict]) -> None:
        """Rewrite the journal as header + the kept records (drops any torn tail), ready to append."""
        lines = [json.dumps({"identity": self.identity}, default=str, allow_nan=True)]
        lines += [json.dumps(record, allow_nan=True, ensure_ascii=False) for record in resumed]
        atomic_write(self.path, "".join(line + "\n" for line in lines), fsync=True)

    def append(self, records: list[dict]) -> None:
        """Append finished units and flush them to disk before returning."""
        if not records:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(r, allow_nan=True, ensure_ascii=False) + "\n" for r in records))
            handle.flush()
            os.fsync(handle.fileno())

    def finish(self) -> None:
        """The job completed: its journal is no longer needed."""
        self.path.unlink(missing_ok=True)
