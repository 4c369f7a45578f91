"""The scorer's in-process memo returns exactly what the reward cache returns (speed is in benchmarks/)."""
from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np

import ragenv  # noqa: F401
from ragenv.llm import FrozenLLM, LLMConfig, PromptRequest
from ragenv.reward_cache import RewardCache
from tests.support import TEST_LLM


def requests_for(nq) -> list[PromptRequest]:
    questions = nq.split("dev")[:2]
    out = []
    for q in questions:
        gold = tuple(nq.corpus[nq.corpus.row(pid)] for pid in q.gold_passage_ids)
        out += [PromptRequest(question=q, passages=gold, generate=True), PromptRequest(question=q, passages=()),
                PromptRequest(question=q, passages=(), answers=(), generate=True, task="search_query")]
    return out


def test_memo_returns_exactly_what_the_cache_returns(nq, tmp_path):
    path = tmp_path / "cache.sqlite"
    requests = requests_for(nq)
    computing = FrozenLLM(LLMConfig(TEST_LLM), RewardCache(path))
    computed = computing.run(requests)
    assert not any(r.score.cached for r in computed if r.score is not None)

    reader = FrozenLLM(LLMConfig(TEST_LLM), RewardCache(path))  # empty memo: every result from SQLite
    from_cache = reader.run(requests)
    assert all((r.score is None or r.score.cached) and (r.generation is None or r.generation.cached)
               for r in from_cache)
    passes = reader.stats.forward_passes
    assert reader.run(requests) == from_cache  # now from the memo
    assert computing.run(requests) == from_cache  # memo filled by computing: marked cached as the cache marks them
    assert [computing.run([r])[0] for r in requests] == from_cache  # one request per call too
    assert reader.stats.forward_passes == passes == 0


def test_memo_is_bounded_and_off_without_a_cache(nq, tmp_path):
    requests = requests_for(nq)
    small = FrozenLLM(LLMConfig(TEST_LLM), RewardCache(tmp_path / "c.sqlite"), memo_size=2)
    first = small.run(requests)
    assert len(small._memo) == 2 and list(small._memo) == requests[-2:]  # the oldest went first
    assert small.run(requests) == [small.run([r])[0] for r in requests]
    assert ([r.score for r in small.run(requests)]
            == [r.score and dataclasses.replace(r.score, cached=True) for r in first])
    assert FrozenLLM(LLMConfig(TEST_LLM), use_cache=False).memo_size == 0


def test_retrieval_steps_from_the_memo_equal_steps_from_the_cache(small_dataset, tmp_path):
    path = tmp_path / "cache.sqlite"

    def make():
        return gym.make("RAGRetrieval-v0", dataset=str(small_dataset), split="test", llm=TEST_LLM, limit=3,
                        generate_answers=True, features=False, diagnostics=True, cache=RewardCache(path))

    def episodes(env):
        out = []
        for q in env.unwrapped.questions:
            for action in (lambda c: c[:3], lambda c: np.array([c[3], -1, c[1]]), lambda c: np.full(3, -1)):
                obs, _ = env.reset(options={"question_id": q.id})
                _, reward, terminated, truncated, step_info = env.step(action(obs["candidate_ids"]))
                out.append((reward, terminated, truncated, step_info))
        return out

    computed = episodes(make())
    fresh = make()
    from_cache = episodes(fresh)
    from_memo = episodes(fresh)
    assert all(info["cache_hit"] for *_, info in from_cache)
    assert from_memo == from_cache

    def strip(runs):
        return [(r, t, u, {k: v for k, v in i.items() if k != "cache_hit"}) for r, t, u, i in runs]

    assert strip(computed) == strip(from_cache)
