"""SmartRAG-v0 leaderboard submissions: the query options each episode used, replayed to the same numbers.

Real data (the small nq fixture, first 6 test questions) and the real small LLM (SmolLM2),
shared with the retrieval tests' scorer so the model loads once.
"""
from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest

from ragenv.errors import SubmissionError
from ragenv.leaderboard.submission import parse_submission, submission_from_result, to_json
from tests.support import TEST_LLM, assert_one_line_error, run_cli

AGENTS = ("never-retrieve", "always-retrieve:keywords", "random", "oracle")


@pytest.fixture(scope="module")
def smartrag_setup(small_dataset, small_env):
    """(config, environment) of SmartRAG-v0 on the first 6 test questions, sharing small_env's SmolLM2."""
    import gymnasium as gym

    from ragenv.evaluate import EvalConfig

    config = EvalConfig(env="SmartRAG-v0", dataset=str(small_dataset), split="test", limit=6, llm=TEST_LLM)
    env = gym.make(config.env, **config.make_kwargs(features=False, scorer=small_env.unwrapped.scorer))
    yield config, env
    env.close()


@pytest.fixture(scope="module")
def runs(smartrag_setup) -> dict:
    """Agent -> (evaluate result, its submission as a JSON-ready dict)."""
    from ragenv.evaluate import evaluate

    config, env = smartrag_setup
    out = {}
    for agent in AGENTS:
        result = evaluate(replace(config, agent=agent), env=env, progress=False, resume=False)
        out[agent] = result, json.loads(to_json(submission_from_result(result)))
    return out


def _replay(document: dict, env) -> dict:
    from ragenv.leaderboard.replay import replay

    return replay(parse_submission(json.dumps(document), "sub.json"), env=env, allow_local=True, progress=False,
                  source="sub.json")


def test_submission_holds_the_query_options_of_each_episode(runs):
    result, document = runs["always-retrieve:keywords"]
    assert document["env_id"] == "SmartRAG-v0"
    assert document["env_options"] == {"alpha": 0.2, "max_retrievals": 1, "top_n": 3, "reward": "em_f1",
                                       "first_stage": "bm25s"}
    assert [a["retrievals"] for a in document["actions"]] == [["keywords"]] * 6
    assert runs["never-retrieve"][1]["actions"][0] == {"question_id": result["per_question"][0]["question_id"],
                                                       "retrievals": []}
    assert document["metadata"]["agent_type"] == "rag-policy"
    assert document["metadata"]["authors"] == ["ragenv baselines"]


def test_every_baseline_replays_to_its_evaluated_numbers(runs, smartrag_setup):
    from ragenv.leaderboard.replay import metric_differences

    _, env = smartrag_setup
    for agent, (result, document) in runs.items():
        scored = _replay(document, env)
        assert metric_differences(result["metrics"], scored["metrics"]) == [], agent
        assert [r["reward"] for r in scored["per_question"]] == [r["reward"] for r in result["per_question"]], agent
        assert ([r["generated_answer"] for r in scored["per_question"]]
                == [r["generated_answer"] for r in result["per_question"]]), agent
        assert [r["retrievals"] for r in scored["per_question"]] == [a["retrievals"] for a in document["actions"]]
        assert scored["replay"]["llm_work"]["forward_passes"] == 0, agent  # evaluate left every outcome cached


def test_other_traces_score_what_the_environment_gives_them(runs, smartrag_setup):
    """Replay follows the trace: each question's reward is the env's return for that exact sequence."""
    _, env = smartrag_setup
    base = env.unwrapped
    _, document = runs["never-retrieve"]
    changed = copy.deepcopy(document)
    for i, action in enumerate(changed["actions"]):
        action["retrievals"] = [["question"], ["llm-query"], []][i % 3]
    scored = _replay(changed, env)
    for action, record in zip(changed["actions"], scored["per_question"]):
        question = base.question_by_id(action["question_id"])
        options = tuple(["question", "keywords", "llm-query", "question+guess"].index(o) for o in action["retrievals"])
        outcome = next(s for s in base.sequence_outcomes(question) if s.options == options)
        assert record["reward"] == pytest.approx(outcome.episode_return, abs=1e-12)
        assert record["generated_answer"] == outcome.answer.text
    assert scored["metrics"]["retrievals_per_question"] == pytest.approx(4 / 6)


def _retrievals(value):
    def mutate(doc):
        doc["actions"][1]["retrievals"] = value
        return doc
    return mutate


def _option(key, value):
    def mutate(doc):
        doc["env_options"][key] = value
        return doc
    return mutate


@pytest.mark.parametrize("case, mutate, needles", [
    ("unknown option", _retrievals(["bm25"]), ["field actions[1].retrievals[0]", "'question'", '"bm25"']),
    ("over quota", _retrievals(["question", "keywords"]), ["field actions[1].retrievals", "at most 1",
                                                          "max_retrievals"]),
    ("repeated option", lambda d: _option("max_retrievals", 2)(_retrievals(["keywords", "keywords"])(d)),
     ["field actions[1].retrievals", "at most once", '"keywords" (string of 8 characters) twice']),
    ("draft fields", lambda d: {**d, "actions": [{"question_id": "x", "queries": ["q"], "answer": "a"}]},
     ["field actions[0]"]),
])
def test_bad_traces_are_refused_by_the_parser(runs, case, mutate, needles):
    document = mutate(copy.deepcopy(runs["random"][1]))
    with pytest.raises(SubmissionError) as caught:
        parse_submission(json.dumps(document), "sub.json")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("sub.json: field ")
    for needle in needles:
        assert needle in message, (case, message)


@pytest.mark.parametrize("case, mutate, needles", [
    ("alpha", _option("alpha", 0.5), ["field env_options.alpha", "expected 0.2", "found 0.5"]),
    ("top_n", _option("top_n", 5), ["field env_options.top_n", "expected 3", "found 5"]),
    ("quota", _option("max_retrievals", 2), ["field env_options.max_retrievals", "expected 1"]),
    ("missing question", lambda d: {**d, "actions": d["actions"][1:]}, ["field actions:", "1 missing"]),
])
def test_traces_that_do_not_fit_the_environment_are_refused(runs, smartrag_setup, case, mutate, needles):
    _, env = smartrag_setup
    with pytest.raises(SubmissionError) as caught:
        _replay(mutate(copy.deepcopy(runs["random"][1])), env)
    for needle in needles:
        assert needle in str(caught.value), (case, str(caught.value))


def test_cli_replays_a_smartrag_submission(runs, tmp_path):
    """`ragenv leaderboard evaluate` on a written file builds its own SmartRAG-v0 environment."""
    from ragenv.leaderboard.replay import metric_differences

    result, document = runs["oracle"]
    path, out = tmp_path / "oracle.json", tmp_path / "scored.json"
    path.write_text(json.dumps(document))
    replayed = run_cli("leaderboard", "evaluate", str(path), "--allow-local", "--output", str(out))
    assert replayed.returncode == 0, replayed.stderr
    scored = json.loads(out.read_text())
    assert scored["env_id"] == "SmartRAG-v0" and metric_differences(result["metrics"], scored["metrics"]) == []
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_retrievals(["bm25"])(copy.deepcopy(document))))
    assert_one_line_error(run_cli("leaderboard", "evaluate", str(bad), "--allow-local"),
                          "field actions[1].retrievals[0]", '"bm25"')
