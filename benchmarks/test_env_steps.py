"""Environment steps per second, cold (empty reward cache) and warm (every LLM result cached).

    RAGENV_DATA=../shared/data .venv/bin/python -m pytest benchmarks/test_env_steps.py

RAGRetrieval-v0 on the small nq folder (tests/conftest.py: real questions and passages), 4 test
questions x 2 seeded random actions over the BM25 candidates, SmolLM2, features on; a step is
``reset`` + ``step`` through gym.make's wrappers (``ragenv.bench.run_retrieval_episodes``).

- ``cold``: a fresh environment and reward cache; the LLM computes every result.
- ``memo``: the same episodes replayed in the same process (the target: >= 5,000 steps/s).
- ``reward cache``: a fresh environment and scorer per round over the filled SQLite cache: what a
  new process sees.

SmartRAG-v0's figures are in test_smartrag_speed.py; its cold figure is here.
"""
from __future__ import annotations

import gymnasium as gym
import pytest

import ragenv  # noqa: F401
from ragenv.bench import (
    TARGET_WARM_STEPS_PER_S,
    retrieval_episodes,
    run_retrieval_episodes,
    run_smartrag_episodes,
)
from ragenv.llm import FrozenLLM
from ragenv.reward_cache import RewardCache
from tests.support import N_QUESTIONS, TEST_LLM

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # short_dataset and one_torch_thread: conftest.py

QUESTIONS = 4
WARM_STEPS = 3000


def make_retrieval(small_dataset, cache=None, scorer=None):
    return gym.make("RAGRetrieval-v0", dataset=str(small_dataset), split="test", llm=TEST_LLM, limit=QUESTIONS,
                    features=True, cache=cache, scorer=scorer)


@pytest.fixture(scope="module")
def cache_path(tmp_path_factory):
    return tmp_path_factory.mktemp("env-steps") / "reward_cache.sqlite"


@pytest.fixture(scope="module")
def cold(small_dataset, cache_path):
    """The environment after its cold pass, the episodes, and the cold rate."""
    import time

    env = make_retrieval(small_dataset, cache=RewardCache(cache_path))
    episodes = retrieval_episodes(env, 2)
    env.unwrapped.scorer.model  # noqa: B018 - the model load is not a step
    start = time.perf_counter()
    steps = run_retrieval_episodes(env, episodes)
    return env, episodes, steps / (time.perf_counter() - start)


def report(benchmark, steps: int, label: str) -> float:
    rate = steps / benchmark.stats.stats.mean
    benchmark.extra_info.update({"steps": steps, "steps_per_second": rate})
    print(f"\n{label}: {rate:,.0f} steps/s ({steps} steps per round)")
    return rate


def test_retrieval_cold_steps(benchmark, cold):
    _, episodes, rate = cold
    benchmark.extra_info.update(steps=len(episodes), steps_per_second=rate)
    benchmark.pedantic(lambda: None, rounds=1)  # the cold pass ran once, in the fixture
    print(f"\nRAGRetrieval-v0 cold: {rate:,.2f} steps/s ({len(episodes)} steps)")


def test_retrieval_warm_steps_from_memos(benchmark, cold):
    env, episodes, _ = cold
    before = env.unwrapped.scorer.stats.forward_passes
    steps = benchmark.pedantic(run_retrieval_episodes, args=(env, episodes, WARM_STEPS), rounds=5, warmup_rounds=1)
    assert env.unwrapped.scorer.stats.forward_passes == before  # the LLM never ran
    assert report(benchmark, steps, "RAGRetrieval-v0 warm (memo)") >= TARGET_WARM_STEPS_PER_S


def test_retrieval_warm_steps_from_the_reward_cache(benchmark, cold, small_dataset, cache_path):
    env, episodes, _ = cold
    config = env.unwrapped.scorer.config

    def setup():  # a new scorer (empty memo, no model: everything is cached) and env per round
        return (make_retrieval(small_dataset, scorer=FrozenLLM(config, RewardCache(cache_path))), episodes), {}

    steps = benchmark.pedantic(run_retrieval_episodes, setup=setup, rounds=3)
    report(benchmark, steps, "RAGRetrieval-v0 warm (reward cache, fresh process state)")


def test_smartrag_cold_steps(benchmark, short_dataset, tmp_path):
    import time

    env = gym.make("SmartRAG-v0", dataset=str(short_dataset), split="test", llm=TEST_LLM, limit=N_QUESTIONS,
                   features=True, cache=RewardCache(tmp_path / "c.sqlite"))
    env.unwrapped.scorer.model  # noqa: B018
    start = time.perf_counter()
    steps = run_smartrag_episodes(env, 8)
    rate = steps / (time.perf_counter() - start)
    benchmark.extra_info.update(steps=steps, steps_per_second=rate)
    benchmark.pedantic(lambda: None, rounds=1)
    print(f"\nSmartRAG-v0 cold: {rate:,.2f} steps/s ({steps} steps)")
