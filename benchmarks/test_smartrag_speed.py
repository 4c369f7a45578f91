"""SmartRAG-v0 environment steps per second from a warm cache (target: >= 500).

    RAGENV_DATA=../shared/data .venv/bin/python -m pytest benchmarks/test_smartrag_speed.py

Small nq subset (4 test questions, passages cut to 40 words), SmolLM2, features on.
The cache is filled first (``precompute``), so no step runs the LLM:

- ``memo``: one environment, every state already visited in this process (the
  per-process memos answer): what PPO training sees after its first pass.
- ``reward cache``: a fresh environment (empty memos) per round over the filled
  SQLite reward cache: what a new process sees.

A step is ``env.step`` (through gym.make's wrappers); resets are included in the
time. Actions are uniform over the legal ones, seeded.
"""
from __future__ import annotations

import gymnasium as gym
import pytest

import ragenv  # noqa: F401
from ragenv.bench import run_smartrag_episodes
from tests.support import N_QUESTIONS, TEST_LLM

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # short_dataset and one_torch_thread: conftest.py

TARGET = 500.0
EPISODES = 300


def make(short_dataset, scorer=None):
    return gym.make("SmartRAG-v0", dataset=str(short_dataset), split="test", llm=TEST_LLM, limit=N_QUESTIONS,
                    features=True, scorer=scorer)


@pytest.fixture(scope="module")
def warm_env(short_dataset):
    env = make(short_dataset)
    env.unwrapped.precompute(progress=False)
    return env


def report(benchmark, steps: int, label: str) -> float:
    rate = steps / benchmark.stats.stats.mean
    benchmark.extra_info.update({"steps": steps, "steps_per_second": rate})
    print(f"\nSmartRAG-v0 warm steps/s ({label}): {rate:,.0f} ({steps} steps per round)")
    return rate


def test_steps_per_second_from_memos(benchmark, warm_env):
    run_smartrag_episodes(warm_env, 50)  # every state visited once
    before = warm_env.unwrapped.scorer.stats.forward_passes
    steps = benchmark.pedantic(run_smartrag_episodes, args=(warm_env, EPISODES), rounds=5, warmup_rounds=1)
    assert warm_env.unwrapped.scorer.stats.forward_passes == before  # the LLM never ran
    assert report(benchmark, steps, "memo") >= TARGET


def test_steps_per_second_from_the_reward_cache(benchmark, warm_env, short_dataset):
    scorer = warm_env.unwrapped.scorer
    fresh = {}

    def setup():
        env = make(short_dataset, scorer=scorer)  # new memos; data and models already loaded
        fresh["env"] = env
        return (env, EPISODES), {}

    before = scorer.stats.forward_passes
    steps = benchmark.pedantic(run_smartrag_episodes, setup=setup, rounds=3)
    assert scorer.stats.forward_passes == before
    assert report(benchmark, steps, "reward cache") >= TARGET
