"""Vector RAGRetrieval-v0 / SmartRAG-v0 (envs/vector.py): make_vec registration, one batched LLM call per
vector step, the single environment's rewards per sub-environment, next-step autoreset, and SB3 learning."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import ragenv  # noqa: F401
from ragenv.envs.sb3 import SB3VecEnv, sb3_retrieval_vec_env
from ragenv.envs.vector import RAGRetrievalVectorEnv, SmartRAGVectorEnv
from ragenv.errors import InvalidActionError
from ragenv.llm import FrozenLLM, LLMConfig
from ragenv.reward_cache import RewardCache
from tests.support import N_QUESTIONS, TEST_LLM

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NUM_ENVS = 3


def count_runs(scorer: FrozenLLM) -> list[int]:
    """Record the number of prompts of every FrozenLLM.run call of ``scorer`` (instance patch)."""
    calls: list[int] = []
    original = scorer.run

    def run(requests):
        calls.append(len(requests))
        return original(requests)

    scorer.run = run
    return calls


def fresh_scorer(path) -> FrozenLLM:
    return FrozenLLM(LLMConfig(TEST_LLM), RewardCache(path))


def env_kwargs(short_dataset, **extra):
    return {"dataset": str(short_dataset), "split": "test", "llm": TEST_LLM, "limit": N_QUESTIONS, "features": False,
            **extra}


retrieval_kwargs = smartrag_kwargs = env_kwargs


# --------------------------------------------------------------------------- registration and layout


def test_make_vec_builds_the_batched_vector_envs(short_dataset, tmp_path):
    scorer = fresh_scorer(tmp_path / "c.sqlite")
    venv = gym.make_vec("RAGRetrieval-v0", num_envs=NUM_ENVS, vectorization_mode="vector_entry_point",
                        **retrieval_kwargs(short_dataset, scorer=scorer))
    assert isinstance(venv, RAGRetrievalVectorEnv) and venv.num_envs == NUM_ENVS
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert venv.spec.id == "RAGRetrieval-v0" and venv.spec.kwargs["vectorization_mode"] == "vector_entry_point"
    subs = venv.envs
    assert all(e.scorer is scorer and e.corpus is subs[0].corpus for e in subs)  # shared, loaded once
    assert len({id(e) for e in subs}) == NUM_ENVS
    smart = gym.make_vec("SmartRAG-v0", num_envs=2, **smartrag_kwargs(short_dataset, scorer=scorer))  # default mode
    assert isinstance(smart, SmartRAGVectorEnv)
    # the same layout as gymnasium's SyncVectorEnv of the single environment
    sync = gym.make_vec("RAGRetrieval-v0", num_envs=NUM_ENVS, vectorization_mode="sync",
                        **retrieval_kwargs(short_dataset, scorer=scorer))
    assert venv.single_observation_space == sync.single_observation_space
    assert venv.action_space == sync.action_space and venv.observation_space == sync.observation_space
    obs, info = venv.reset(seed=5)
    sync_obs, sync_info = sync.reset(seed=5)
    assert obs["question"] == sync_obs["question"]  # same seeds, same questions
    np.testing.assert_array_equal(obs["candidate_ids"], sync_obs["candidate_ids"])
    assert list(info["question_id"]) == list(sync_info["question_id"])


# --------------------------------------------------------------------------- RAGRetrieval-v0


def retrieval_actions(venv, obs, step: int) -> np.ndarray:
    """Deterministic varied actions: top-k, closed-book, a mix with an empty slot."""
    k = venv.envs[0].k
    actions = np.full((venv.num_envs, k), -1, dtype=np.int64)
    for i in range(venv.num_envs):
        ranked = [int(r) for r in obs["candidate_ids"][i] if r >= 0]
        choice = (i + step) % 3
        if choice == 0:
            actions[i, :k] = ranked[:k]
        elif choice == 2:
            actions[i, 0], actions[i, 1] = ranked[k], ranked[0]
    return actions


def test_retrieval_vector_step_is_one_llm_call_with_the_single_env_rewards(short_dataset, tmp_path):
    venv = gym.make_vec("RAGRetrieval-v0", num_envs=NUM_ENVS, vectorization_mode="vector_entry_point",
                        **retrieval_kwargs(short_dataset, scorer=fresh_scorer(tmp_path / "c.sqlite")))
    calls = count_runs(venv.scorer)
    # The single environment over the same cache file, with its own scorer: it reads what the vector steps
    # computed (the frozen LLM's numbers depend on the batch in the last bits, bf16: up to ~0.04 in a mean
    # log-prob, so cold runs in different batches are compared separately below).
    single = gym.make("RAGRetrieval-v0", **retrieval_kwargs(short_dataset, scorer=fresh_scorer(tmp_path / "c.sqlite")))
    obs, _ = venv.reset(seed=11)
    for step in range(2):
        actions = retrieval_actions(venv, obs, step)
        calls.clear()
        _, rewards, terminated, truncated, infos = venv.step(actions)
        assert calls == [2 * NUM_ENVS]  # one FrozenLLM.run: every choice and its closed-book baseline
        assert terminated.all() and not truncated.any()
        for i in range(NUM_ENVS):  # the single environment, same question, same action
            if step == 0:
                single_obs, _ = single.reset(seed=11 + i)
            else:
                single_obs, _ = single.reset(options={"question_id": infos["question_id"][i]})
            np.testing.assert_array_equal(single_obs["candidate_ids"], obs["candidate_ids"][i])
            _, reward, terminated_one, _, info = single.step(actions[i])
            assert terminated_one and rewards[i] == reward
            for key, value in info.items():
                assert infos[key][i] == value or (value != value and infos[key][i] != infos[key][i]), key  # NaN hit@k
        assert single.unwrapped.scorer.stats.forward_passes == 0  # it computed nothing: same LLM results
        # next-step autoreset: the following step resets every sub-environment, ignores the actions, reward 0
        calls.clear()
        obs, rewards, terminated, truncated, infos = venv.step(actions)
        assert calls == [] and (rewards == 0).all() and not terminated.any()
        assert set(infos) >= {"question_id", "candidate_texts"}


def test_cold_vector_and_single_runs_agree_to_float32_batching_rounding(short_dataset, tmp_path):
    def scorer(name):
        return FrozenLLM(LLMConfig(TEST_LLM, dtype="float32"), RewardCache(tmp_path / name))

    venv = RAGRetrievalVectorEnv(num_envs=NUM_ENVS, **retrieval_kwargs(short_dataset, scorer=scorer("vector.sqlite")))
    single = gym.make("RAGRetrieval-v0", **retrieval_kwargs(short_dataset, scorer=scorer("single.sqlite")))
    obs, _ = venv.reset(seed=4)
    actions = retrieval_actions(venv, obs, 0)
    _, rewards, _, _, infos = venv.step(actions)
    for i in range(NUM_ENVS):
        single.reset(seed=4 + i)
        _, reward, _, _, info = single.step(actions[i])
        assert reward == pytest.approx(rewards[i], abs=2e-3)  # the tolerance tests/test_llm.py allows batching
        assert info["passage_ids"] == infos["passage_ids"][i]


def test_invalid_action_names_the_sub_environment_and_changes_nothing(short_dataset, tmp_path):
    kwargs = retrieval_kwargs(short_dataset, scorer=fresh_scorer(tmp_path / "c.sqlite"))
    venv = RAGRetrievalVectorEnv(num_envs=2, **kwargs)
    obs, _ = venv.reset(seed=0)
    good = obs["candidate_ids"][:, :3].copy()
    bad = good.copy()
    bad[1, 1] = bad[1, 0]  # a passage chosen twice
    with pytest.raises(InvalidActionError, match="sub-environment 1"):
        venv.step(bad)
    _, _, terminated, _, _ = venv.step(good)  # both episodes were still open
    assert terminated.all()


def test_same_step_autoreset_reports_the_final_observation(short_dataset, tmp_path):
    venv = RAGRetrievalVectorEnv(num_envs=2, autoreset_mode="SameStep",
                                 **retrieval_kwargs(short_dataset, scorer=fresh_scorer(tmp_path / "c.sqlite")))
    obs, _ = venv.reset(seed=3)
    _, _, terminated, _, infos = venv.step(obs["candidate_ids"][:, :3])
    assert terminated.all() and infos["_final_obs"].all()
    assert infos["final_obs"][0]["question"] == obs["question"][0]
    assert "answer_logprob" in infos["final_info"]


# --------------------------------------------------------------------------- SmartRAG-v0


def test_smartrag_vector_batches_resets_and_answers_and_matches_the_single_env(short_dataset, tmp_path):
    venv = gym.make_vec("SmartRAG-v0", num_envs=NUM_ENVS, vectorization_mode="vector_entry_point",
                        **smartrag_kwargs(short_dataset, scorer=fresh_scorer(tmp_path / "vector.sqlite")))
    calls = count_runs(venv.scorer)
    single = gym.make("SmartRAG-v0", **smartrag_kwargs(short_dataset, scorer=fresh_scorer(tmp_path / "vector.sqlite")))
    _, infos = venv.reset(seed=21)
    assert len(calls) == 2  # all new questions: guesses + written queries in one call, then the guesses' confidence
    questions = list(infos["question_id"])
    assert venv.action_masks().shape == (NUM_ENVS, 5) and venv.action_masks().all()
    # step 0: sub-environments 0 and 2 answer at once, 1 retrieves (keywords); step 1: 1 answers while 0 and 2
    # are reset by the next-step autoreset (their actions ignored)
    calls.clear()
    _, rewards0, terminated, _, _ = venv.step(np.array([0, 2, 0]))
    assert len(calls) == 1 and list(terminated) == [True, False, True]  # both answers in one call
    assert venv.action_masks()[1].tolist() == [True, False, False, False, False]  # quota used up
    calls.clear()
    _, rewards1, terminated, _, infos = venv.step(np.array([3, 0, 4]))
    assert len(calls) <= 2 and list(terminated) == [False, True, False]  # answer + new questions batched
    assert rewards1[0] == rewards1[2] == 0.0
    episodes = {0: ([0], rewards0[0]), 1: ([2, 0], rewards0[1] + rewards1[1]), 2: ([0], rewards0[2])}
    for i, (actions, expected) in episodes.items():  # the single environment, same question and actions
        single.reset(options={"question_id": questions[i]})
        total = 0.0
        for action in actions:
            _, reward, terminated, _, _ = single.step(action)
            total += reward
        assert terminated and total == expected
    assert single.unwrapped.scorer.stats.forward_passes == 0  # it read the vector env's LLM results


# --------------------------------------------------------------------------- Stable-Baselines3


def test_maskable_ppo_learns_on_the_smartrag_vector_env(short_dataset, tmp_path):
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    scorer = fresh_scorer(tmp_path / "c.sqlite")
    venv = SB3VecEnv(gym.make_vec("SmartRAG-v0", num_envs=2, **smartrag_kwargs(short_dataset, scorer=scorer,
                                                                                features=True)))
    venv.env.unwrapped.envs[0].precompute(progress=False)  # the rollouts then need no LLM
    venv.seed(0)
    venv.reset()
    assert get_action_masks(venv).shape == (2, 5)
    model = MaskablePPO("MultiInputPolicy", venv, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=32)
    assert model.num_timesteps >= 32


def test_ppo_learns_on_the_retrieval_vector_env(short_dataset, tmp_path):
    from stable_baselines3 import PPO

    scorer = fresh_scorer(tmp_path / "c.sqlite")
    vector = gym.make_vec("RAGRetrieval-v0", num_envs=2, **retrieval_kwargs(short_dataset, scorer=scorer, k=1,
                                                                              num_candidates=2))
    venv = sb3_retrieval_vec_env(vector)
    assert set(venv.observation_space.spaces) == {"candidate_ids", "candidate_scores"}
    model = PPO("MultiInputPolicy", venv, n_steps=4, batch_size=8, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=8)
    assert model.num_timesteps >= 8
    _, _, dones, infos = venv.step(np.zeros((2, 2), dtype=np.float32))
    assert dones.all() and all("terminal_observation" in info for info in infos)
