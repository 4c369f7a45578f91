"""Persistent memo of every frozen-LLM result (SQLite, WAL mode).

Keys are sha256 digests of everything that determines a result: the kind of call
(``logprob`` or ``generate`` and its settings), the model fingerprint, the prompt
template version, the question and passage ids *and texts*, and the answer. A
changed passage or model therefore never reads a stale entry. The ids are kept as
columns too, so the cache can be inspected.

Several processes may read and write one cache at once: SQLite serialises writers,
each batch is one transaction, and ``INSERT OR IGNORE`` makes concurrent writes of
the same key harmless (results are deterministic). A file that is not a ragenv
cache, or fails SQLite's integrity check when opened, is moved aside with a
warning and a fresh cache is started; nothing is read from it.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ragenv import settings
from ragenv.errors import CacheError

SCHEMA_VERSION = 1
_APP_ID = 0x52414745  # "RAGE": marks a file as a ragenv cache


def cache_key(*parts: object) -> str:
    """Digest of a JSON rendering of ``parts`` (stable across processes and runs)."""
    blob = json.dumps(parts, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    key: str
    kind: str
    model: str
    question_id: str
    passage_ids: str
    value: dict


def default_path() -> Path:
    return settings.cache_dir() / "reward_cache.sqlite"


def _file_problem(path: Path, timeout: float) -> str | None:
    """Why a file is not a sound ragenv cache (read-only look), or None if it is one."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if app_id != _APP_ID:
                if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0:
                    return None  # an empty database: another process is creating this cache right now
                return "not a ragenv reward cache"
            if version != SCHEMA_VERSION:
                return f"schema version {version}, expected {SCHEMA_VERSION}"
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            return None if result == "ok" else f"integrity check failed: {result}"
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)


class RewardCache:
    """Key-value store of LLM results, safe for concurrent processes."""

    def __init__(self, path: str | os.PathLike | None = None, *, timeout: float = 60.0):
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout
        self._conn = self._open()
        self.hits = 0
        self.misses = 0

    # ------------------------------------------------------------------ opening and checking
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = %d" % int(self._timeout * 1000))
        return conn

    def _open(self) -> sqlite3.Connection:
        if self.path.exists() and self.path.stat().st_size > 0:
            problem = self._problem()
            if problem:
                aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
                os.replace(self.path, aside)
                for suffix in ("-wal", "-shm"):
                    side = Path(str(self.path) + suffix)
                    if side.exists():
                        os.replace(side, Path(str(aside) + suffix))
                warnings.warn(f"reward cache {self.path} is unusable ({problem}); "
                              f"moved it to {aside} and started a new one")
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, kind TEXT NOT NULL, model TEXT NOT NULL, "
                "question_id TEXT, passage_ids TEXT, value TEXT NOT NULL, created REAL NOT NULL)"
            )
            if conn.execute("PRAGMA application_id").fetchone()[0] != _APP_ID:
                conn.execute(f"PRAGMA application_id = {_APP_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise CacheError(f"cannot open reward cache {self.path}: {exc}; move it away or set RAGENV_CACHE") from None
        return conn

    def _problem(self) -> str | None:
        """Why an existing file cannot be used as this cache, or None if it can."""
        return _file_problem(self.path, self._timeout)

    def check(self) -> dict:
        """Full integrity check and entry counts per kind and model (``ragenv cache check``)."""
        integrity = self._conn.execute("PRAGMA integrity_check").fetchone()[0]
        bad_json = 0
        counts: dict[str, int] = {}
        for kind, model, value in self._conn.execute("SELECT kind, model, value FROM results"):
            try:
                json.loads(value)
            except json.JSONDecodeError:
                bad_json += 1
            counts[f"{kind} / {model[:16]}"] = counts.get(f"{kind} / {model[:16]}", 0) + 1
        return {"path": str(self.path), "integrity": integrity, "unreadable_values": bad_json,
                "entries": sum(counts.values()), "by_kind_and_model": counts}

    def info(self) -> dict:
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        entries = self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return {"path": str(self.path), "bytes": size, "entries": entries}

    # ------------------------------------------------------------------ reads and writes
    def get_many(self, keys: Sequence[str]) -> dict[str, dict]:
        """The cached values among ``keys``."""
        found: dict[str, dict] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self._conn.execute(f"SELECT key, value FROM results WHERE key IN ({marks})", chunk):
                found[key] = json.loads(value)
        self.hits += sum(k in found for k in keys)
        self.misses += sum(k not in found for k in keys)
        return found

    def get(self, key: str) -> dict | None:
        return self.get_many([key]).get(key)

    def put_many(self, entries: Iterable[CacheEntry]) -> None:
        """Write a batch in one transaction (all or nothing)."""
        rows = [(e.key, e.kind, e.model, e.question_id, e.passage_ids, json.dumps(e.value), time.time())
                for e in entries]
        if not rows:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def merge_from(self, other: str | os.PathLike) -> int:
        """Copy every entry of another cache file into this one; returns how many were new.

        One transaction: all of the other file's entries arrive or none do (an error rolls back).
        The other file is only read (opened read-only, never moved or changed) and must be a
        sound ragenv cache, else :class:`CacheError`. Keys already present keep their value
        (``INSERT OR IGNORE``; results are deterministic). Safe beside concurrent writers:
        SQLite serialises the write transaction, and the count is this transaction's own
        inserts, not the file's growth. Values are copied as stored, with their creation time.
        """
        path = Path(other)
        if not path.is_file():
            raise CacheError(f"cannot merge reward cache {path}: no such file")
        if path.resolve() == self.path.resolve():
            return 0
        problem = _file_problem(path, self._timeout)
        if problem:
            raise CacheError(f"cannot merge reward cache {path}: {problem}")
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=self._timeout)
        try:
            rows = source.execute("SELECT key, kind, model, question_id, passage_ids, value, created FROM results")
            before = self._conn.total_changes
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                while True:
                    chunk = rows.fetchmany(5000)
                    if not chunk:
                        break
                    for row in chunk:
                        json.loads(row[5])  # nothing unreadable gets in
                    self._conn.executemany("INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)", chunk)
                self._conn.execute("COMMIT")
            except BaseException as exc:
                self._conn.execute("ROLLBACK")
                if isinstance(exc, (sqlite3.DatabaseError, ValueError)):
                    raise CacheError(f"cannot merge reward cache {path}: {exc}; nothing was merged") from None
                raise
            return self._conn.total_changes - before
        finally:
            source.close()

    def checkpoint(self) -> None:
        """Move the write-ahead log into the main file, so that a copy of the file alone holds every entry."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def __len__(self) -> int:
        return self.info()["entries"]

    def close(self) -> None:
        """Close the file; closing twice is harmless, and any later use raises sqlite3.ProgrammingError."""
        self._conn.close()

    def __getstate__(self):  # a cache crossing a process boundary reopens its file
        return {"path": self.path, "timeout": self._timeout}

    def __setstate__(self, state):
        self.__init__(state["path"], timeout=state["timeout"])
