"""Parallel precompute (ragenv/distributed.py): shards, a transactional merge, and a local Ray run that
produces exactly the cache one process produces."""
from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3

import pytest

from ragenv.distributed import (
    PrecomputeJob,
    compute_shard,
    make_env,
    question_ids,
    shard_questions,
)
from ragenv.errors import CacheError
from ragenv.reward_cache import CacheEntry, RewardCache, cache_key
from tests.support import TEST_LLM

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def entries(path) -> set[tuple]:
    """Every row of a cache file but its creation time."""
    conn = sqlite3.connect(path)
    try:
        return set(conn.execute("SELECT key, kind, model, question_id, passage_ids, value FROM results"))
    finally:
        conn.close()


def filled(path, keys, value=1.0) -> RewardCache:
    cache = RewardCache(path)
    cache.put_many(CacheEntry(cache_key(k), "logprob", "m", "q", "", {"mean": value}) for k in keys)
    return cache


# --------------------------------------------------------------------------- shards


@pytest.mark.unit
def test_shards_are_whole_batches_in_order():
    ids = [f"q{i}" for i in range(10)]
    shards = shard_questions(ids, 3, 3)
    assert [q for s in shards for q in s] == ids
    assert [len(s) for s in shards] == [6, 3, 1]  # batches 2 + 1 + 1; only the last batch is short
    assert shard_questions(ids, 100, 4) == [ids[0:4], ids[4:8], ids[8:10]]
    assert shard_questions(ids, 1, 4) == [ids]
    assert shard_questions([], 2, 4) == []


# --------------------------------------------------------------------------- merge


@pytest.mark.unit
def test_merge_counts_its_own_inserts_and_keeps_existing_values(tmp_path):
    filled(tmp_path / "a.sqlite", range(5), value=2.0).close()
    target = filled(tmp_path / "t.sqlite", range(3, 8))
    other_writer = RewardCache(tmp_path / "t.sqlite")  # a second connection writing meanwhile
    other_writer.put_many([CacheEntry(cache_key("x"), "logprob", "m", "q", "", {"mean": 0.0})])
    assert target.merge_from(tmp_path / "a.sqlite") == 3  # keys 0, 1, 2: not the other writer's entry
    assert len(target) == 9 and target.get(cache_key(3)) == {"mean": 1.0}  # existing values are kept
    assert target.merge_from(tmp_path / "a.sqlite") == 0


@pytest.mark.unit
def test_merge_is_all_or_nothing_and_never_touches_a_bad_source(tmp_path):
    source = filled(tmp_path / "s.sqlite", range(20))
    source._conn.execute("UPDATE results SET value = 'not json' WHERE key = ?", (cache_key(17),))
    source.close()
    target = filled(tmp_path / "t.sqlite", ["kept"])
    with pytest.raises(CacheError, match="nothing was merged"):
        target.merge_from(tmp_path / "s.sqlite")
    assert len(target) == 1  # rolled back: none of the 19 good entries arrived
    (tmp_path / "junk.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(CacheError, match="cannot merge"):
        target.merge_from(tmp_path / "junk.sqlite")
    assert (tmp_path / "junk.sqlite").read_bytes() == b"not a database" * 100  # not moved aside, not changed
    with pytest.raises(CacheError, match="no such file"):
        target.merge_from(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def _merge_worker(target: str, source: str) -> None:
    RewardCache(target).merge_from(source)


@pytest.mark.unit
def test_concurrent_merges_and_writes_lose_nothing(tmp_path):
    for n in range(3):
        filled(tmp_path / f"s{n}.sqlite", [f"{n}-{i}" for i in range(300)] + [f"shared-{i}" for i in range(50)]).close()
    target = RewardCache(tmp_path / "t.sqlite")
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_merge_worker, args=(str(tmp_path / "t.sqlite"), str(tmp_path / f"s{n}.sqlite")))
               for n in range(3)]
    for p in workers:
        p.start()
    target.put_many(CacheEntry(cache_key(f"w{i}"), "logprob", "m", "q", "", {"mean": 0.0}) for i in range(100))
    for p in workers:
        p.join(timeout=900)  # generous: spawned interpreters start slowly on a loaded machine
        assert p.exitcode == 0
    assert len(target) == 3 * 300 + 50 + 100 and target.check()["integrity"] == "ok"


# --------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("env_id", ["SmartRAG-v0", "RAGRetrieval-v0"])
def test_ray_precompute_gives_exactly_the_single_process_cache(ray_local, short_dataset, tmp_path, env_id):
    from ragenv.distributed import ray_precompute

    job = PrecomputeJob(env=env_id, dataset=str(short_dataset), split="test", limit=4, llm=TEST_LLM, batch_size=2)
    single = make_env(job, tmp_path / "single.sqlite")  # the existing code path, one process, in order
    single.precompute(batch_size=job.batch_size, progress=False)
    single.scorer.cache.close()
    main = RewardCache(tmp_path / "main.sqlite")
    report = ray_precompute(job, workers=2, cache=main, progress=False)
    assert report["shards"] == 2 and len({r["pid"] for r in report["per_shard"]}) >= 1
    assert report["entries_added"] == len(main) > 0
    expected = entries(tmp_path / "single.sqlite")
    got = entries(tmp_path / "main.sqlite")
    assert {row[0] for row in got} == {row[0] for row in expected}  # same keys
    assert got == expected  # same values, byte for byte
    assert {json.loads(row[5]).get("prompt_version") for row in got} >= {"rag-qa-v1"}


def test_compute_shard_matches_its_part_of_the_single_run(short_dataset, tmp_path):
    job = PrecomputeJob(env="SmartRAG-v0", dataset=str(short_dataset), split="test", limit=4, llm=TEST_LLM,
                        batch_size=2)
    ids = question_ids(job)
    assert len(ids) == 4
    report = compute_shard(job, ids[:2], tmp_path / "shard.sqlite")
    assert report["questions"] == 2 and report["states_per_question"] == 5
    assert {row[3] for row in entries(tmp_path / "shard.sqlite")} == set(ids[:2])
