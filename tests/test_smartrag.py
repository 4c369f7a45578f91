"""SmartRAG-v0 / SmartRAGText-v0 with a real LLM (SmolLM2) on real questions: API contract, masks and quota,
bad actions, rewards, caching, baselines, the PPO agent and the CLI (precompute, train, evaluate, alpha sweep)."""
from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ragenv  # noqa: F401
from ragenv.envs.smartrag.env import ANSWER, INVALID_ACTION_REWARD
from ragenv.envs.smartrag.outcomes import guess_support
from ragenv.envs.smartrag.queries import QUERY_OPTIONS, QUERY_WRITERS, clean_search_query, keyword_query, words_in_query
from ragenv.envs.smartrag.text import parse_text_action
from ragenv.errors import ConfigError, InvalidActionError, RagenvError
from ragenv.llm import PROMPT_VERSION, FrozenLLM, LLMConfig, PromptRequest
from ragenv.metrics import answer_in_output, exact_match, f1_score
from ragenv.reward_cache import RewardCache, cache_key
from tests import support
from tests.support import N_QUESTIONS, TEST_LLM, assert_one_line_error

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def env(short_dataset):
    environment = gym.make("SmartRAG-v0", dataset=str(short_dataset), split="test", llm=TEST_LLM, limit=N_QUESTIONS)
    environment.unwrapped.precompute(progress=False)
    yield environment
    environment.close()


def variant(env, env_id: str = "SmartRAG-v0", **options):
    """Another environment over the same data and scorer (nothing reloaded)."""
    base = env.unwrapped
    return gym.make(env_id, dataset=base.dataset, split="test", limit=N_QUESTIONS, scorer=base.scorer,
                    features=options.pop("features", False), **options)


# --------------------------------------------------------------------------- contract


def test_check_env_passes_for_both_variants(env):
    check_env(env.unwrapped, skip_render_check=True, skip_close_check=True)
    check_env(variant(env, "SmartRAGText-v0").unwrapped, skip_render_check=True, skip_close_check=True)


def test_observation_and_info_layout(env):
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert set(obs) == {"question_embedding", "context_embedding", "retrievals", "query_used", "query_scores",
                        "query_scores_per_word", "closed_book_support", "closed_book_confidence"}
    assert obs["question_embedding"].shape == obs["context_embedding"].shape == (384,)
    assert not obs["context_embedding"].any() and obs["retrievals"][0] == 0 and not obs["query_used"].any()
    assert np.all((obs["closed_book_confidence"] >= 0) & (obs["closed_book_confidence"] <= 1))
    assert obs["closed_book_confidence"][0] >= obs["closed_book_confidence"][1]  # per token >= whole answer
    assert set(info["queries"]) == set(QUERY_OPTIONS) and info["queries"]["question"] == info["question"]
    assert info["queries"]["keywords"] == keyword_query(info["question"])
    assert info["queries"]["question+guess"].startswith(info["question"])
    assert info["passages"] == [] and info["num_retrievals"] == 0
    obs2, _, _, _, info2 = env.step(1)
    assert obs2["retrievals"][0] == 1 and obs2["query_used"].tolist() == [1, 0, 0, 0]
    assert 0 < len(info2["passages"]) <= 3 and obs2["context_embedding"].any()
    assert len(set(info2["passage_ids"])) == len(info2["passage_ids"])


def test_support_and_per_word_scores_follow_the_guess_and_the_queries(env):
    base = env.unwrapped
    for question in base.questions[:8]:
        obs, info = env.reset(options={"question_id": question.id})
        state = base.question_state(question)
        for o, name in enumerate(QUERY_OPTIONS):
            passages = [base.corpus[r].contents for r in state.rows[o]]
            assert obs["closed_book_support"][o] == guess_support(info["closed_book_answer"], passages)
            expected = obs["query_scores"][o] / words_in_query(info["queries"][name])
            assert obs["query_scores_per_word"][o] == pytest.approx(expected)
    # whole words after SQuAD normalisation; an empty guess is never supported
    assert guess_support("The Beatles!", ["Formed in 1960, the beatles were a band."]) == 1.0
    assert guess_support("Beat", ["the Beatles were a band"]) == 0.0
    assert guess_support("", ["anything"]) == guess_support("  the ", ["the"]) == 0.0
    assert words_in_query("Who wrote the the Iliad?") == 3 and words_in_query("?") == 1


def test_text_variant_observation_is_the_prompt(env):
    text_env = variant(env, "SmartRAGText-v0")
    obs, info = text_env.reset(seed=1)
    assert text_env.observation_space.contains(obs)
    assert obs.startswith(f"Question: {info['question']}") and "(none)" in obs and "[Search] <query>" in obs
    obs, reward, terminated, _, info = text_env.step("[Search] " + info["question"])
    assert reward == 0.0 and not terminated and "[1] " in obs and "[Search]" not in obs.splitlines()[-1]


# --------------------------------------------------------------------------- masks, quota, bad actions


def test_action_masks_follow_the_quota(env):
    _, info = env.reset(seed=2)
    assert env.unwrapped.action_masks().tolist() == [True] * 5 == info["action_mask"].tolist()
    _, _, _, _, info = env.step(3)
    assert info["action_mask"].tolist() == [True, False, False, False, False]
    with pytest.raises(InvalidActionError, match="quota"):
        env.step(1)
    assert env.unwrapped.num_retrievals == 1  # nothing changed
    assert env.step(ANSWER)[2]

    two = variant(env, max_retrievals=2)
    two.reset(seed=2)
    two.step(2)
    assert two.unwrapped.action_masks().tolist() == [True, True, False, True, True]
    with pytest.raises(InvalidActionError, match="already used"):
        two.step(2)
    two.step(1)
    assert two.unwrapped.action_masks().tolist() == [True, False, False, False, False]
    assert two.step(ANSWER)[4]["num_retrievals"] == 2

    none = variant(env, max_retrievals=0)
    none.reset(seed=2)
    assert none.unwrapped.action_masks().tolist() == [True, False, False, False, False]


def test_maskable_ppo_sees_the_masks_through_wrappers(env):
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: env])
    assert is_masking_supported(venv)
    venv.reset()
    assert get_action_masks(venv).shape == (1, 5)


@pytest.mark.parametrize("action, message", [
    (5, "unknown action 5"), (-1, "unknown action -1"), (99, "retrieve with"), (1.5, "one integer"),
    ("keywords", "one integer"), (np.array([0, 1]), "one integer"), (None, "one integer"),
    (float("nan"), "one integer"),
])
def test_invalid_actions_raise_and_change_nothing(env, action, message):
    env.reset(seed=3)
    before = env.unwrapped.current_question.id
    with pytest.raises(InvalidActionError, match=message):
        env.step(action)
    assert env.unwrapped.current_question.id == before and env.unwrapped.num_retrievals == 0
    assert env.step(np.int64(ANSWER))[2]


def test_penalize_mode_rewards_a_masked_action_and_changes_nothing(env):
    penalized = variant(env, invalid_action="penalize")
    penalized.reset(seed=2)
    obs, _, _, _, info = penalized.step(3)
    for action in (1, 3, np.int64(4)):  # the quota is used up: every RETRIEVE is masked
        after, reward, terminated, truncated, flagged = penalized.step(action)
        assert reward == INVALID_ACTION_REWARD == -1.0 and not (terminated or truncated)
        assert flagged["invalid_action"] is True and "quota" in flagged["invalid_action_reason"]
        assert set(after) == set(obs) and all(np.array_equal(after[k], obs[k]) for k in obs)
        assert flagged["passage_ids"] == info["passage_ids"] and penalized.unwrapped.num_retrievals == 1
    with pytest.raises(InvalidActionError, match="unknown action 7"):  # outside the space: raises in both modes
        penalized.step(7)
    _, reward, terminated, _, final = penalized.step(ANSWER)  # the episode goes on as if nothing happened
    assert terminated and "invalid_action" not in final
    assert reward == pytest.approx(final["em"] + final["f1"] - 0.2)
    assert final["actions"] == ["retrieve:llm-query", "answer"]

    venv = gym.make_vec("SmartRAG-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        dataset=env.unwrapped.dataset, split="test", limit=N_QUESTIONS, scorer=env.unwrapped.scorer,
                        features=False, invalid_action="penalize")
    venv.reset(seed=0)
    venv.step(np.array([1, 2]))
    _, rewards, terminations, _, infos = venv.step(np.array([1, ANSWER]))  # env 0: masked; env 1: answers
    assert rewards[0] == INVALID_ACTION_REWARD and not terminations[0] and terminations[1]
    assert infos["invalid_action"][0] and infos["_invalid_action"].tolist() == [True, False]


@pytest.mark.unit
@pytest.mark.parametrize("env_id, options, keyword", [
    ("SmartRAG-v0", {"alpha": float("nan")}, "alpha"), ("SmartRAG-v0", {"alpha": float("inf")}, "alpha"),
    ("SmartRAG-v0", {"max_retrievals": -1}, "max_retrievals"),
    ("SmartRAG-v0", {"max_retrievals": 1.0}, "max_retrievals"),
    ("SmartRAG-v0", {"top_n": 0}, "top_n"), ("SmartRAG-v0", {"limit": -1}, "limit"),
    ("SmartRAG-v0", {"invalid_action": "ignore"}, "invalid_action"), ("SmartRAG-v0", {"reward": "f1"}, "reward"),
    ("SmartRAGText-v0", {"alpha": float("nan")}, "alpha"),
    ("SmartRAGText-v0", {"invalid_action": "penalize"}, "invalid_action"),
])
def test_bad_keywords_are_refused_at_make_time(env_id, options, keyword):
    """Checked before any data or model is read: the dataset folder does not even exist."""
    with pytest.raises(ConfigError, match=keyword):
        gym.make(env_id, dataset="/nonexistent/dataset-folder", llm="no-such-llm", **options)


def test_stable_baselines3_and_gymnasium_checkers_pass_in_penalize_mode(env):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(variant(env, invalid_action="penalize"))  # steps with action_space.sample(): masked ones too
    check_env(variant(env, invalid_action="penalize").unwrapped, skip_render_check=True, skip_close_check=True)


def test_query_options_are_the_writer_mapping_and_the_text_env_has_no_mask(env):
    assert QUERY_OPTIONS == tuple(QUERY_WRITERS) == ("question", "keywords", "llm-query", "question+guess")
    state = env.unwrapped.question_state(env.unwrapped.questions[0])
    assert tuple(state.queries) == QUERY_OPTIONS and len(state.rows) == len(QUERY_OPTIONS)
    text_env = variant(env, "SmartRAGText-v0").unwrapped
    assert not hasattr(text_env, "action_masks") and not hasattr(text_env, "precompute")


def test_step_outside_an_episode_is_an_error(env):
    env.reset(seed=4)
    env.step(ANSWER)
    with pytest.raises(RagenvError, match="reset"):
        env.unwrapped.step(ANSWER)


@pytest.mark.parametrize("action, reason", [
    ("", "empty"), ("   ", "empty"), ("Paris", "must start with"), ("[Lookup] Paris", "must start with"),
    ("[Answer]", "needs an answer"), ("[Search]   \nsecond line", "needs a query"),
    ("answer: [Answer] x", "must start with"),
    ("[Answer] " + "x" * 2000, "longer than"),
])
def test_malformed_text_actions_end_the_episode_with_minus_one(env, action, reason):
    text_env = variant(env, "SmartRAGText-v0")
    text_env.reset(seed=5)
    _, reward, terminated, truncated, info = text_env.step(action)
    assert reward == -1.0 and terminated and not truncated
    assert reason in info["invalid_action"] and info["episode_record"]["reward"] == -1.0
    with pytest.raises(RagenvError, match="reset"):
        text_env.unwrapped.step("[Answer] x")


def test_text_actions_search_quota_and_answer_reward(env):
    text_env = variant(env, "SmartRAGText-v0")
    _, info = text_env.reset(seed=6)
    question = text_env.unwrapped.current_question
    with pytest.raises(InvalidActionError, match="string action"):
        text_env.step(ANSWER)
    assert text_env.step("  [search] " + question.question + "\n")[1] == 0.0
    _, reward, terminated, _, info = text_env.step("[Search] another query")  # quota 1 is used up
    assert terminated and reward == -1.0 and "quota" in info["invalid_action"]

    text_env.reset(options={"question_id": question.id})
    text_env.step("[Search] " + question.question)
    _, reward, terminated, _, info = text_env.step(f"[ANSWER] {question.answers[0]}")
    assert terminated and info["em"] == 1.0 and info["f1"] == 1.0
    assert reward == pytest.approx(2.0 - 0.2 * 1)
    assert info["episode_record"]["search_queries"] == [question.question]


def test_discrete_episode_replays_identically_as_text_actions(env):
    """The text variant with the same query strings and answer reaches the same passages and reward."""
    text_env = variant(env, "SmartRAGText-v0")
    for question in env.unwrapped.questions[:2]:
        env.reset(options={"question_id": question.id})
        env.step(4)
        _, reward, _, _, info = env.step(ANSWER)
        text_env.reset(options={"question_id": question.id})
        for query in info["search_queries"]:
            text_env.step(f"[Search] {query}")
        answer = f"[Answer] {info['answer']}" if info["answer"] else "[Answer] -"
        _, text_reward, _, _, text_info = text_env.step(answer)
        assert text_info["passage_ids"] == info["passage_ids"]
        if info["answer"]:
            assert text_reward == pytest.approx(reward)


def test_render_ansi(env):
    rendered = variant(env, render_mode="ansi")
    rendered.reset(seed=0)
    rendered.step(1)
    assert "retrievals 1/1" in rendered.render()
    rendered.step(ANSWER)
    text = rendered.render()
    assert text.startswith("Q: ") and "reward" in text


@pytest.mark.unit
def test_parsers_and_query_rewrites():
    assert parse_text_action(" [Search]  capital of France \n[Answer] x") == ("search", "capital of France")
    assert parse_text_action("[answer] Paris") == ("answer", "Paris")
    assert parse_text_action("[Answer]")[0] == "malformed"
    assert keyword_query("who wrote the lyrics of let it be") == "wrote lyrics let"
    assert keyword_query("what's the capital of France?") == "capital France"
    assert keyword_query("who won the 2010 world cup") == "won 2010 world cup"
    assert keyword_query("who is it") == "who is it"  # nothing left: the question itself
    assert clean_search_query('The query for "capital of France" would be', "q") == "capital of France"
    assert clean_search_query("Query: Eiffel tower height", "q") == "Eiffel tower height"
    assert clean_search_query("  ", "the question") == "the question"


# --------------------------------------------------------------------------- rewards, LLM prompt, caching


def test_reward_is_em_plus_f1_minus_alpha_per_retrieval(env):
    for question in env.unwrapped.questions[:2]:
        env.reset(options={"question_id": question.id})
        _, first, _, _, _ = env.step(2)
        _, reward, terminated, _, info = env.step(ANSWER)
        answer = info["answer"]
        em, f1 = exact_match(answer, question.answers), f1_score(answer, question.answers)
        assert first == 0.0 and terminated and (info["em"], info["f1"]) == (em, f1)
        assert reward == pytest.approx(em + f1 - 0.2 * 1)
        env.reset(options={"question_id": question.id})
        _, closed, _, _, info = env.step(ANSWER)
        assert closed == pytest.approx(info["em"] + info["f1"]) and info["answer"] == info["closed_book_answer"]
    accuracy_env = variant(env, reward="accuracy", alpha=0.5)
    accuracy_env.reset(options={"question_id": question.id})
    accuracy_env.step(1)
    _, reward, _, _, info = accuracy_env.step(ANSWER)
    assert reward == pytest.approx(answer_in_output(info["answer"], question.answers) - 0.5)


def test_search_query_prompt_is_a_separate_versioned_task(tmp_path):
    llm = FrozenLLM(LLMConfig(TEST_LLM), RewardCache(tmp_path / "c.sqlite"))
    from ragenv.data import Passage, Question

    q, p = Question("q1", "Who wrote Hamlet?", ("Shakespeare",)), Passage("p1", "T", "text")
    assert llm.prompt_text(q.question, [], "search_query") != llm.prompt_text(q.question, [])
    assert "search engine query" in llm.prompt_text(q.question, [p], "search_query")
    legacy = cache_key("generate", llm.cache_fingerprint, PROMPT_VERSION, llm.config.max_passage_words,
                       llm.config.max_question_words, q.question, [], llm.config.max_new_tokens)
    assert llm.key("generate", q.question, [], llm.config.max_new_tokens) == legacy  # old caches stay valid
    assert llm.key("generate", q.question, [], llm.config.max_new_tokens, "search_query") != legacy
    with pytest.raises(ConfigError, match="unknown prompt task"):
        llm.run([PromptRequest(question=q, passages=(), answers=(), generate=True, task="poem")])


def test_second_identical_episode_makes_no_llm_call(env, short_dataset):
    question = env.unwrapped.questions[1]

    def episode(environment):
        environment.reset(options={"question_id": question.id})
        environment.step(4)
        return environment.step(ANSWER)

    first = episode(env)
    before = dict(vars(env.unwrapped.scorer.stats))
    second = episode(env)
    assert vars(env.unwrapped.scorer.stats) == before
    assert second[1] == first[1] and second[4]["answer"] == first[4]["answer"]
    # A fresh process (new memos, new scorer) reads everything from the reward cache: no model is loaded.
    fresh_scorer = FrozenLLM(LLMConfig(TEST_LLM), RewardCache())
    fresh = gym.make("SmartRAG-v0", dataset=str(short_dataset), split="test", limit=N_QUESTIONS, scorer=fresh_scorer,
                     features=False)
    third = episode(fresh)
    assert fresh_scorer.stats.forward_passes == 0 and fresh_scorer.stats.model_loads == 0
    assert third[1] == first[1] and third[4]["cache_hit"] and third[4]["episode_record"]["cache_hit"]


# --------------------------------------------------------------------------- baselines


def test_baselines_run_and_the_oracle_bounds_them(env):
    from ragenv.evaluate import EvalConfig, evaluate
    from ragenv.registry import agent_names, check_agent_name, make_agent

    names = [n for n in agent_names("SmartRAG-v0") if not n.startswith("ppo:")]
    assert {"never-retrieve", "always-retrieve", "always-retrieve:keywords", "random", "oracle"} <= set(names)
    results = {}
    for name in names:
        config = EvalConfig(env="SmartRAG-v0", agent=name, dataset="short", split="test", llm=TEST_LLM)
        results[name] = evaluate(config, env=env, progress=False)
    per_question = {name: {r["question_id"]: r["reward"] for r in res["per_question"]} for name, res in results.items()}
    for name, rewards in per_question.items():
        assert all(per_question["oracle"][q] >= r - 1e-9 for q, r in rewards.items()), name
    assert results["never-retrieve"]["metrics"]["retrievals_per_question"] == 0.0
    assert results["never-retrieve"]["metrics"]["answered_without_retrieval"] == 1.0
    for name in names:
        if name.startswith("always-retrieve"):
            assert results[name]["metrics"]["retrievals_per_question"] == 1.0
            option = name.partition(":")[2] or "question"
            assert all(r["actions"] == [f"retrieve:{option}", "answer"] for r in results[name]["per_question"])
    metrics = results["random"]["metrics"]
    assert {"reward", "em", "f1", "accuracy", "retrievals_per_question", "answered_without_retrieval",
            "cache_hit_rate"} <= set(metrics)
    assert not any({"question", "answers"} & set(r) for res in results.values() for r in res["per_question"])
    again = evaluate(EvalConfig(env="SmartRAG-v0", agent="random", dataset="short", split="test", llm=TEST_LLM),
                     env=env, progress=False, texts=True)
    assert [r["actions"] for r in again["per_question"]] == [r["actions"] for r in results["random"]["per_question"]]
    questions = {q.id: q for q in env.unwrapped.questions}
    assert all(r["question"] == questions[r["question_id"]].question
               and r["answers"] == list(questions[r["question_id"]].answers) for r in again["per_question"])
    with pytest.raises(ConfigError, match="unknown agent"):
        check_agent_name("always-retrieve:bogus", "SmartRAG-v0")
    with pytest.raises(ConfigError, match="unknown query option"):
        from ragenv.baselines import AlwaysRetrieveAgent

        AlwaysRetrieveAgent(env.unwrapped, "bogus")
    with pytest.raises(ConfigError, match="no trained PPO agent"):
        make_agent("ppo:/nonexistent/folder", env)
    with pytest.raises(ConfigError, match="no built-in agents"):
        check_agent_name("oracle", "SmartRAGText-v0")


# --------------------------------------------------------------------------- CLI: precompute, train, evaluate, sweep


def run_cli(*args: str, cache: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """``ragenv ARGS`` in a fresh process over a private reward cache, on one torch thread."""
    return support.run_cli(*args, env={"RAGENV_CACHE": str(cache), "OMP_NUM_THREADS": "1"}, timeout=timeout)


@pytest.fixture(scope="module")
def cli(short_dataset, tmp_path_factory, env):
    """A fresh reward cache (models and indexes shared with the session cache) and the data options."""
    cache = tmp_path_factory.mktemp("smartrag-cli-cache")
    session = Path(os.environ["RAGENV_CACHE"])
    for name in ("models", "indexes"):
        (cache / name).symlink_to(session / name, target_is_directory=True)
    data = ["--dataset", str(short_dataset), "--split", "train", "--limit", str(N_QUESTIONS), "--llm", TEST_LLM]
    return cache, data


@pytest.fixture(scope="module")
def precomputed(cli):
    cache, data = cli
    result = run_cli("precompute", "--env", "SmartRAG-v0", *data, cache=cache)
    assert result.returncode == 0, result.stderr
    return result


def test_precompute_fills_the_cache_and_evaluate_then_hits_it(cli, precomputed, tmp_path):
    cache, data = cli
    assert "precomputed 4 questions x 5 states" in precomputed.stdout.replace("\n", " ")
    assert RewardCache(cache / "reward_cache.sqlite").info()["entries"] >= N_QUESTIONS * 4
    out = tmp_path / "never.json"
    result = run_cli("evaluate", "--env", "SmartRAG-v0", "--agent", "never-retrieve", *data, "--output", str(out),
                     cache=cache)
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    assert doc["metrics"]["cache_hit_rate"] == 1.0
    assert doc["llm_work"]["forward_passes"] == 0 and doc["llm_work"]["model_loads"] == 0
    assert doc["env_options"]["alpha"] == 0.2 and doc["n"] == N_QUESTIONS
    assert "answered_without_retrieval" in result.stdout


def test_ppo_trains_saves_loads_and_evaluates_from_the_cli(cli, precomputed, tmp_path):
    cache, data = cli
    folder = tmp_path / "ppo"
    keys = "retrievals,query_used,query_scores,closed_book_support"
    result = run_cli("train", "ppo", "--env", "SmartRAG-v0", *data, "--steps", "256", "--observation-keys", keys,
                     "--output", str(folder), cache=cache)
    assert result.returncode == 0, result.stderr
    assert (folder / "model.zip").is_file() and (folder / "vecnormalize.pkl").is_file()
    assert list(folder.glob("ppo_*/events.out.tfevents.*")), "no TensorBoard log"
    meta = json.loads((folder / "agent.json").read_text())
    assert meta["training"]["timesteps"] >= 256 and meta["env_options"]["alpha"] == 0.2
    assert list(meta["observation_shapes"]) == keys.split(",")
    assert meta["observation_shapes"]["closed_book_support"] == [4]
    out = tmp_path / "ppo.json"
    result = run_cli("evaluate", "--env", "SmartRAG-v0", "--agent", f"ppo:{folder}", *data, "--output", str(out),
                     cache=cache)
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    assert doc["n"] == N_QUESTIONS and doc["metrics"]["cache_hit_rate"] == 1.0
    assert doc["llm_work"]["forward_passes"] == 0
    assert 0.0 <= doc["metrics"]["retrievals_per_question"] <= 1.0
    # The same agent in-process: load, act with masks, and refuse a mismatched environment.
    from ragenv.agents.ppo import PPOAgent, PPOConfig

    assert "question_embedding" not in meta["observation_shapes"]  # left out by default (they get memorised)
    featureless = gym.make("SmartRAG-v0", dataset=data[1], split="train", limit=N_QUESTIONS, llm=TEST_LLM,
                           features=False, cache=str(cache / "reward_cache.sqlite"))
    PPOAgent.load(folder, env=featureless)  # the default policy needs no encoder
    with pytest.raises(ConfigError, match="features=True"):
        PPOAgent.train(featureless, PPOConfig(total_timesteps=8, observation_keys=("question_embedding", "retrievals")))
    agent = PPOAgent.load(folder)
    obs = {key: np.zeros(shape, dtype=np.float32) for key, shape in meta["observation_shapes"].items()}
    assert agent.act(obs, {"action_mask": np.array([True, False, False, False, False])}) == ANSWER
    # Training again into the same folder would lose the agent: refused.
    assert_one_line_error(run_cli("train", "ppo", *data, "--steps", "64", "--output", str(folder), cache=cache),
                          "already holds a trained agent")
    assert_one_line_error(run_cli("train", "ppo", *data, "--steps", "64", "--observation-keys", "retrievals,bogus",
                                  "--output", str(tmp_path / "bogus"), cache=cache), "observation lacks")


def test_cli_errors_are_one_line(cli):
    cache, data = cli
    assert_one_line_error(run_cli("evaluate", "--env", "SmartRAG-v0", "--agent", "ppo:/no/such/dir", *data,
                                  cache=cache),
                          "no trained PPO agent")
    assert_one_line_error(run_cli("evaluate", "--env", "SmartRAG-v0", "--agent", "always-retrieve:bogus", *data,
                                  cache=cache), "unknown agent")
    assert_one_line_error(run_cli("evaluate", "--env", "RAGRetrieval-v0", "--agent", "bm25s", "--alpha", "0.1", *data,
                                  cache=cache), "--alpha")
    # RAGRetrieval-v0 is precomputed too (tests/test_distributed.py); SmartRAGText-v0 asks the frozen LLM nothing
    assert_one_line_error(run_cli("precompute", "--env", "SmartRAGText-v0", *data, cache=cache), "SmartRAG-v0")
    assert_one_line_error(run_cli("precompute", "--workers", "2", *data, cache=cache), "--ray")


def test_alpha_sweep_writes_a_png(cli, precomputed, tmp_path):
    cache, data = cli
    png = tmp_path / "sweep.png"
    result = run_cli("smartrag", "alpha-sweep", "--dataset", data[1], "--split", "train", "--eval-split", "train",
                     "--limit", str(N_QUESTIONS), "--eval-limit", str(N_QUESTIONS), "--llm", TEST_LLM, "--steps", "128",
                     "--alphas", "0,0.5", "--output", str(png), cache=cache)
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(png.with_suffix(".json").read_text())
    assert [row["alpha"] for row in summary["results"]] == [0.0, 0.5]
    evaluation = json.loads((tmp_path / "sweep" / "alpha-0.5" / "eval.json").read_text())
    assert summary["numerics"] == evaluation["numerics"] and summary["numerics"]["dtype"] == "float32"
    assert summary["provenance"] == evaluation["provenance"]
    for row in summary["results"]:
        assert math.isfinite(row["reward"]) and 0.0 <= row["retrievals_per_question"] <= 1.0
    assert (tmp_path / "sweep" / "alpha-0.5" / "eval.json").is_file()


@pytest.mark.unit
def test_the_signatures_show_every_keyword_the_environments_take():
    """Tools read an env's keywords from its signature (the wheel smoke test sets features=False that way)."""
    import inspect

    from gymnasium.envs.registration import load_env_creator

    for env_id, features_default in (("SmartRAG-v0", True), ("SmartRAGText-v0", False)):
        params = inspect.signature(load_env_creator(gym.registry[env_id].entry_point)).parameters
        assert {"dataset", "split", "llm", "alpha", "features", "dtype", "device"} <= set(params)
        assert params["features"].default is features_default
    params = inspect.signature(load_env_creator(gym.registry["SmartRAG-v0"].entry_point)).parameters
    assert params["invalid_action"].default == "raise"
