"""The reward cache: concurrent writers lose nothing, foreign or corrupt files are set aside, never read."""
from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from ragenv.reward_cache import CacheEntry, RewardCache, cache_key

pytestmark = pytest.mark.unit  # model-free: the fast tier


def _writer(path: str, worker: int, n: int) -> None:
    cache = RewardCache(path)
    for batch in range(n // 10):
        cache.put_many(
            CacheEntry(cache_key(worker, batch, i), "logprob", "m", f"q{worker}", "", {"mean": float(i)})
            for i in range(10)
        )
    # every worker also writes the same shared keys: concurrent duplicates are harmless
    cache.put_many(CacheEntry(cache_key("shared", i), "logprob", "m", "q", "", {"mean": 1.0}) for i in range(20))
    cache.close()


def test_concurrent_writer_processes_lose_no_entries(tmp_path):
    path = str(tmp_path / "cache.sqlite")
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(path, w, 200)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
        assert p.exitcode == 0
    cache = RewardCache(path)
    assert len(cache) == 4 * 200 + 20
    report = cache.check()
    assert report["integrity"] == "ok" and report["unreadable_values"] == 0
    assert cache.get(cache_key(3, 5, 7)) == {"mean": 7.0}


def test_round_trip_and_hit_counts(tmp_path):
    cache = RewardCache(tmp_path / "c.sqlite")
    key = cache_key("a", 1)
    assert cache.get(key) is None and cache.misses == 1
    cache.put_many([CacheEntry(key, "generate", "m", "q", "p1,p2", {"text": "Paris"})])
    assert cache.get(key) == {"text": "Paris"} and cache.hits == 1
    assert cache_key("a", 1) == key != cache_key("a", 2)


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_corrupt_file_is_set_aside_with_a_warning(tmp_path, content):
    path = tmp_path / "c.sqlite"
    path.write_bytes(content)
    with pytest.warns(UserWarning, match="unusable"):
        cache = RewardCache(path)
    assert len(cache) == 0
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes() == content  # kept for inspection, never read


def test_foreign_sqlite_database_is_not_used(tmp_path):
    path = tmp_path / "c.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE results (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO results VALUES ('k', '{\"mean\": 0}')")
    conn.commit()
    conn.close()
    with pytest.warns(UserWarning, match="not a ragenv reward cache"):
        cache = RewardCache(path)
    assert cache.get("k") is None


def test_merge_copies_new_entries_only(tmp_path):
    a, b = RewardCache(tmp_path / "a.sqlite"), RewardCache(tmp_path / "b.sqlite")
    a.put_many([CacheEntry(cache_key(i), "logprob", "m", "q", "", {"mean": i}) for i in range(5)])
    b.put_many([CacheEntry(cache_key(i), "logprob", "m", "q", "", {"mean": i}) for i in range(3, 8)])
    a.close()
    assert b.merge_from(tmp_path / "a.sqlite") == 3 and len(b) == 8


def test_a_cache_file_another_process_is_still_creating_is_not_set_aside(tmp_path):
    """The race behind lost entries: a writer has created the file (WAL header) but not yet its table."""
    import warnings

    path = tmp_path / "cache.sqlite"
    creating = sqlite3.connect(path)
    creating.execute("PRAGMA journal_mode = WAL")  # what RewardCache._open does before its first transaction
    creating.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # setting the file aside warns
        cache = RewardCache(path)
    assert not list(tmp_path.glob("*.corrupt-*")) and len(cache) == 0
    cache.close()
