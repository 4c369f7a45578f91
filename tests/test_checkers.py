"""Users' own libraries accept RAGRetrieval-v0: Gymnasium's and SB3's env checkers on every documented wrapper
stack, SB3's PPO on the score-action stack, Gymnasium's three vectorization modes, make-time keyword checks."""
from __future__ import annotations

import math
import multiprocessing

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv
from gymnasium.wrappers import FilterObservation
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import ragenv  # noqa: F401
from ragenv.envs import CandidateScoreAction
from ragenv.envs.vector import RAGRetrievalVectorEnv
from ragenv.envs.wrappers import CandidateScoreVectorAction
from ragenv.errors import ConfigError
from ragenv.llm import FrozenLLM, LLMConfig
from ragenv.reward_cache import RewardCache
from tests.support import TEST_LLM

QUESTIONS = 3


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    """One SmolLM2 scorer with a private reward cache, shared by this module's single environments."""
    return FrozenLLM(LLMConfig(TEST_LLM), RewardCache(tmp_path_factory.mktemp("checkers") / "rewards.sqlite"))


def make(small_dataset, scorer, **options):
    options = {"dataset": str(small_dataset), "split": "test", "llm": TEST_LLM, "limit": QUESTIONS, "num_candidates": 5,
               "scorer": scorer, **options}
    return gym.make("RAGRetrieval-v0", **options)


def sb3_ready(env):
    """The documented SB3 stack: score actions, the text dropped (FilterObservation)."""
    keys = [key for key in env.observation_space.spaces if key != "question"]
    return FilterObservation(CandidateScoreAction(env), keys)


# The documented single-environment stacks (README, envs/wrappers.py); SB3 takes only the last (no Text space).
STACKS = {
    "plain": lambda env: env,
    "score actions": CandidateScoreAction,
    "score actions, no text (SB3)": sb3_ready,
}


@pytest.mark.parametrize("stack", list(STACKS))
def test_gymnasium_checker_passes_on_every_documented_stack(small_dataset, scorer, stack):
    env = STACKS[stack](make(small_dataset, scorer))
    # The checker steps once with an unseeded action_space.sample(); a MultiDiscrete sample can choose a
    # passage twice (about 1% of samples on this 324-passage corpus), which the environment refuses by design.
    env.action_space.seed(0)
    gymnasium_check_env(env, skip_render_check=True)


def test_sb3_checker_passes_on_the_score_action_stack(small_dataset, scorer):
    env = sb3_ready(make(small_dataset, scorer))
    sb3_check_env(env, warn=True)


def test_sb3_ppo_learns_on_the_score_action_stack(small_dataset, scorer):
    from stable_baselines3 import PPO

    env = sb3_ready(make(small_dataset, scorer, k=1, features=False))
    model = PPO("MultiInputPolicy", env, n_steps=4, batch_size=4, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=4)
    assert model.num_timesteps >= 4


def test_one_score_action_space_for_both_wrappers(small_dataset, scorer):
    """Single and vector wrappers share Box(-1, 1, (m,)); the old import paths give the same classes."""
    from ragenv.envs.retrieval import CandidateScoreAction as old_single
    from ragenv.envs.vector import CandidateScoreVectorAction as old_vector

    assert old_single is CandidateScoreAction and old_vector is CandidateScoreVectorAction
    single = CandidateScoreAction(make(small_dataset, scorer, features=False))
    vector = CandidateScoreVectorAction(gym.make_vec("RAGRetrieval-v0", num_envs=2, dataset=str(small_dataset),
                                                     split="test", llm=TEST_LLM, limit=QUESTIONS, num_candidates=5,
                                                     scorer=scorer, features=False))
    assert single.action_space == vector.single_action_space == gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
    obs, _ = single.reset(seed=0)
    scores = np.array([-3.0, 7.0, 0.5, 0.0, 2.0])  # finite scores beyond the bounds still act by their order
    assert list(single.action(scores)) == [int(obs["candidate_ids"][i]) for i in (1, 4, 2)]


# --------------------------------------------------------------------------- Gymnasium's vectorization modes


def first_rewards(venv) -> np.ndarray:
    """Reset with seed 0 and step each sub-environment with its first-stage top-2 (fails fast if a worker hangs)."""
    if isinstance(venv, AsyncVectorEnv):
        venv.reset_async(seed=0)
        obs, _ = venv.reset_wait(timeout=180)
    else:
        obs, _ = venv.reset(seed=0)
    actions = np.asarray(obs["candidate_ids"])[:, :2]
    if isinstance(venv, AsyncVectorEnv):
        venv.step_async(actions)
        return venv.step_wait(timeout=180)[1]  # a hung worker raises multiprocessing.TimeoutError here
    return venv.step(actions)[1]


def test_all_three_vectorization_modes_give_the_same_first_rewards(small_dataset, tmp_path):
    """sync, async (forked after this process ran the LLM on two threads) and ragenv's own vector env agree."""
    import torch

    options = dict(dataset=str(small_dataset), split="test", llm=TEST_LLM, limit=4, k=2, num_candidates=3,
                   features=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a multi-threaded OpenMP pool in the parent is what made forked workers hang
    try:
        shared = FrozenLLM(LLMConfig(TEST_LLM), RewardCache(tmp_path / "parent.sqlite"))
        native = gym.make_vec("RAGRetrieval-v0", num_envs=2, vectorization_mode="vector_entry_point", scorer=shared,
                              **options)
        assert isinstance(native, RAGRetrievalVectorEnv)
        expected = first_rewards(native)  # the frozen LLM runs in this process
        sync = gym.make_vec("RAGRetrieval-v0", num_envs=2, vectorization_mode="sync", scorer=shared, **options)
        assert isinstance(sync, SyncVectorEnv)
        np.testing.assert_array_equal(first_rewards(sync), expected)
        # The workers are forked: each loads the LLM again and computes from its own empty cache.
        forked = gym.make_vec("RAGRetrieval-v0", num_envs=2, vectorization_mode="async",
                              vector_kwargs={"context": "fork"}, cache=str(tmp_path / "workers.sqlite"), **options)
        assert isinstance(forked, AsyncVectorEnv)
        try:
            np.testing.assert_allclose(first_rewards(forked), expected, rtol=1e-4, atol=1e-5)
        except multiprocessing.TimeoutError:
            forked.close(terminate=True)
            pytest.fail("forked AsyncVectorEnv workers hung in the frozen TEST_LLM")
        forked.close()
        assert np.all(np.isfinite(expected))
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- make-time keyword checks


BAD_KEYWORDS = [
    ("cost_per_passage", math.nan, "nan"),
    ("cost_per_passage", math.inf, "inf"),
    ("cost_per_passage", -0.5, "-0.5"),
    ("cost_per_passage", "0.02", "'0.02'"),
    ("k", 0, "0"),
    ("k", 2.5, "2.5"),
    ("k", True, "True"),
    ("num_candidates", -3, "-3"),
    ("limit", 0, "0"),
    ("limit", -1, "-1"),
    ("reward", "bogus", "'bogus'"),
    ("first_stage", "bm26", "'bm26'"),
    ("generate_answers", "yes", "'yes'"),
    ("features", "no", "'no'"),
    ("diagnostics", 1, "1"),
    ("render_mode", "human", "'human'"),
    ("split", "", "''"),
    ("cache", 3, "3"),
]


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if data is read: every keyword must be refused before that."""
    import ragenv.envs.components as components

    def refuse(*args, **kwargs):
        raise AssertionError("data was read before the keywords were checked")

    monkeypatch.setattr(components, "load_dataset", refuse)


@pytest.mark.unit  # model-free: nothing is loaded
@pytest.mark.parametrize(("keyword", "value", "shown"), BAD_KEYWORDS, ids=[f"{k}={v!r}" for k, v, _ in BAD_KEYWORDS])
def test_bad_keywords_are_refused_at_make_time(no_loading, keyword, value, shown):
    with pytest.raises(ConfigError) as caught:
        gym.make("RAGRetrieval-v0", **{"dataset": "nq", "split": "test", "llm": TEST_LLM, keyword: value})
    message = str(caught.value)
    assert keyword in message and shown in message and "\n" not in message


@pytest.mark.unit
@pytest.mark.parametrize(("keyword", "value"), [("limit", -1), ("first_stage", "bm26"), ("features", "no")])
def test_shared_keywords_are_refused_for_smartrag_too(no_loading, keyword, value):
    with pytest.raises(ConfigError, match=keyword):
        gym.make("SmartRAG-v0", **{"dataset": "nq", "split": "test", "llm": TEST_LLM, keyword: value})


def test_numpy_numbers_are_accepted(small_dataset, scorer):
    env = make(small_dataset, scorer, k=np.int64(2), cost_per_passage=np.float32(0.5), limit=np.int32(2),
               generate_answers=np.bool_(False), features=False).unwrapped
    assert (env.k, env.cost_per_passage, len(env.questions)) == (2, 0.5, 2)
    assert type(env.k) is int and type(env.cost_per_passage) is float
