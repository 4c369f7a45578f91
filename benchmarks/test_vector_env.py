"""Batched vector environments vs gymnasium's SyncVectorEnv, reward cache COLD (SmolLM2).

    RAGENV_DATA=../shared/data .venv/bin/python -m pytest benchmarks/test_vector_env.py

Each round: a fresh, empty reward cache file and fresh environments over one loaded model,
``reset(seed=0)`` and ``STEPS`` vector steps of a fixed policy (benchmarks/vector_speedup.py,
which also prints the figure as a script). The two vectorisations see the same questions and
prompts; the vector environment asks the frozen LLM once per vector step (SmartRAG-v0: plus
one scoring call when new questions arrive), SyncVectorEnv once per sub-environment.
Private caches only (the test session's RAGENV_CACHE).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from benchmarks.vector_speedup import act, make_cold, make_vector, rollout
from tests.conftest import TEST_LLM

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one torch thread, stable on a shared CPU

NUM_ENVS = int(os.environ.get("RAGENV_BENCH_NUM_ENVS", 8))
STEPS = int(os.environ.get("RAGENV_BENCH_STEPS", 6))
QUESTIONS = 64
ENVS = ("RAGRetrieval-v0", "SmartRAG-v0")
_times: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    from ragenv.llm import FrozenLLM, LLMConfig
    from ragenv.reward_cache import RewardCache

    llm = FrozenLLM(LLMConfig(TEST_LLM), RewardCache(tmp_path_factory.mktemp("warm") / "c.sqlite"))
    llm.model  # noqa: B018 - load before timing
    return llm


@pytest.fixture(scope="module")
def data(nq):
    return nq


@pytest.mark.parametrize("env_id", ENVS)
@pytest.mark.parametrize("mode", ["sync", "vector_entry_point"])
def test_cold_rollout(benchmark, scorer, data, tmp_path, env_id, mode):
    benchmark.group = f"{env_id} cold, {NUM_ENVS} envs x {STEPS} steps"
    rounds = {"n": 0}

    def setup():
        rounds["n"] += 1
        make_cold(scorer, tmp_path / f"cold-{rounds['n']}.sqlite")  # empty cache and memo: every prompt is computed
        return (make_vector(env_id, mode, NUM_ENVS, scorer, data, "test", QUESTIONS), env_id, STEPS), {}

    result = benchmark.pedantic(rollout, setup=setup, rounds=2, warmup_rounds=1)
    assert result["rewards"].shape == (STEPS, NUM_ENVS)
    _times[(env_id, mode)] = benchmark.stats.stats.median


@pytest.mark.parametrize("env_id", ENVS)
def test_speedup_over_sync_vector_env(env_id):
    if (env_id, "sync") not in _times or (env_id, "vector_entry_point") not in _times:
        pytest.skip("run with the cold-rollout benchmarks")
    speedup = _times[(env_id, "sync")] / _times[(env_id, "vector_entry_point")]
    print(f"\n{env_id}: vector env {speedup:.2f}x faster than SyncVectorEnv with a cold reward cache "
          f"({NUM_ENVS} envs, {STEPS} steps, {TEST_LLM}; sync {_times[(env_id, 'sync')]:.2f} s, "
          f"vector {_times[(env_id, 'vector_entry_point')]:.2f} s)")
    assert speedup > 1.0


def test_policy_is_the_same_for_both():
    obs = {"candidate_ids": np.arange(40).reshape(2, 20), "retrievals": np.array([[0.0], [1.0]])}
    assert act("RAGRetrieval-v0", obs).tolist() == [[0, 1, 2], [20, 21, 22]]
    assert act("SmartRAG-v0", obs).tolist() == [1, 0]
