"""Leaderboard submissions: writing one, replaying it to the same numbers, and rejecting bad ones.

Real data (the small nq fixture) and the real small LLM (SmolLM2). Bad submissions are
checked through the validator functions for most cases and through the CLI for a few:
each must fail with its own one-line message that names the field.
"""
from __future__ import annotations

import copy
import json

import pytest

from ragenv.errors import SubmissionError
from ragenv.leaderboard.submission import (
    MAX_SUBMISSION_BYTES,
    SCHEMA_PATH,
    parse_submission,
    schema_text,
    submission_json_schema,
)
from tests.support import TEST_LLM, assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def evaluated(small_dataset, tmp_path_factory):
    """`ragenv evaluate --submission` for bm25s on the small fixture: (result, submission file, folder)."""
    folder = tmp_path_factory.mktemp("leaderboard-eval")
    result = run_cli("evaluate", "--agent", "bm25s", "--dataset", str(small_dataset), "--split", "test",
                     "--llm", TEST_LLM, "--output", str(folder / "run.json"), "--submission", str(folder / "sub.json"),
                     "--name", "My BM25s", "--authors", "Ada, Grace", "--url", "https://example.org/paper")
    assert result.returncode == 0, result.stderr
    return json.loads((folder / "run.json").read_text()), folder / "sub.json", folder


@pytest.fixture(scope="module")
def good(evaluated) -> dict:
    return json.loads(evaluated[1].read_text())


@pytest.fixture(scope="module")
def committed() -> dict:
    """A committed baseline submission (bm25s on nq test-100): a valid document without running anything."""
    from ragenv.leaderboard.entries import LEADERBOARD_DIR

    path = LEADERBOARD_DIR / "submissions" / "ragretrieval-v0-nq-test-100-gemma-3-270m-bm25s.json"
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def replay_env(small_dataset, small_env):
    """The environment a replay of the small-fixture submission builds (once; it shares small_env's loaded LLM)."""
    from ragenv.evaluate import EvalConfig, make_env

    env = make_env(EvalConfig(dataset=str(small_dataset), split="test", llm=TEST_LLM,
                              env_options={"scorer": small_env.unwrapped.scorer}))
    yield env
    env.close()


def encode(document) -> bytes:
    return json.dumps(document).encode()


# --------------------------------------------------------------------------- schema


@pytest.mark.unit
def test_committed_schema_equals_generated():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), "run `ragenv leaderboard schema`"


@pytest.mark.unit
def test_schema_is_valid_and_accepts_a_written_submission(committed):
    import jsonschema

    schema = submission_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(committed)
    bad = copy.deepcopy(committed)
    bad["env_id"] = "Nope-v0"
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)


# --------------------------------------------------------------------------- writing and replaying


@pytest.mark.unit
def test_a_trained_agents_metadata_says_what_it_was_trained_on(tmp_path):
    """ppo:DIR and r3:DIR submissions describe the reference agent and its training data from agent.json."""
    from ragenv.leaderboard.submission import default_metadata

    ppo, r3, broken = tmp_path / "ppo", tmp_path / "r3", tmp_path / "broken"
    for folder in (ppo, r3, broken):
        folder.mkdir()
    (ppo / "agent.json").write_text(json.dumps({"dataset": "nq", "split": "train", "questions": 500}))
    (r3 / "agent.json").write_text(json.dumps({"kind": "r3", "training": {"dataset": "nq", "split": "all"}}))
    (broken / "agent.json").write_text("{not json")

    policy = default_metadata(f"ppo:{ppo}", "SmartRAG-v0", dataset="nq", split="test")
    assert (policy.agent_type, policy.authors) == ("rag-policy", ["ragenv reference agents"])
    assert policy.training_data == "SmartRAG-v0 feedback on nq train, 500 questions" and "ragenv train ppo" in \
        policy.description
    assert policy.test_split_used_in_training is False
    assert default_metadata(f"ppo:{ppo}", "SmartRAG-v0", dataset="nq", split="train").test_split_used_in_training
    assert default_metadata(f"ppo:{ppo}", "SmartRAG-v0", dataset="hotpotqa", split="train") \
        .test_split_used_in_training is False  # another question set

    retriever = default_metadata(f"r3:{r3}", dataset="nq", split="test")
    assert retriever.agent_type == "learned-retriever" and retriever.training_data == \
        "RAGRetrieval-v0 feedback on nq all"
    assert retriever.test_split_used_in_training is True  # trained on every split, test included

    unknown = default_metadata(f"ppo:{broken}", "SmartRAG-v0", dataset="nq", split="test")
    assert (unknown.agent_type, unknown.training_data, unknown.authors) == ("other", "unknown", ["unknown"])
    assert default_metadata("bm25").authors == ["ragenv baselines"]


def test_evaluate_writes_a_submission_of_actions(evaluated, good, small_dataset):
    result, _, _ = evaluated
    sub = parse_submission(encode(good))
    assert sub.env_id == "RAGRetrieval-v0" and sub.format_version == 2
    assert sub.metadata.name == "My BM25s" and sub.metadata.authors == ["Ada", "Grace"]
    assert sub.metadata.agent_type == "sparse-retriever" and sub.metadata.test_split_used_in_training is False
    assert sub.dataset.name == str(small_dataset) and sub.dataset.split == "test"
    assert sub.dataset.fingerprint == result["dataset_fingerprint"] and sub.llm.fingerprint == result["llm_fingerprint"]
    assert sub.llm.numerics.dtype == result["numerics"]["dtype"] == "float32"  # recorded beside the model, canonical
    assert [a.question_id for a in sub.actions] == [r["question_id"] for r in result["per_question"]]
    assert [a.passage_ids for a in sub.actions] == [r["passage_ids"] for r in result["per_question"]]
    assert all(pid.startswith("p") and len(pid) == 17 for a in sub.actions for pid in a.passage_ids)  # ids, not rows


def test_replay_through_the_cli_equals_evaluate(evaluated):
    from ragenv.leaderboard.replay import metric_differences

    result, sub_path, folder = evaluated
    out = folder / "scored.json"
    replayed = run_cli("leaderboard", "evaluate", str(sub_path), "--output", str(out), "--allow-local")
    assert replayed.returncode == 0, replayed.stderr
    scored = json.loads(out.read_text())
    assert scored["replay"]["llm_work"]["forward_passes"] == 0  # everything came from the reward cache
    assert metric_differences(result["metrics"], scored["metrics"]) == []
    assert set(result["metrics"]) - set(scored["metrics"]) == {"seconds", "cache_hit_rate"}  # run telemetry only
    assert [r["reward"] for r in scored["per_question"]] == [r["reward"] for r in result["per_question"]]
    assert ([r["generated_answer"] for r in scored["per_question"]]
            == [r["generated_answer"] for r in result["per_question"]])


def test_reported_metrics_are_ignored(good, replay_env):
    from ragenv.leaderboard.replay import replay

    honest = replay(parse_submission(encode(good)), env=replay_env, allow_local=True, progress=False)
    boastful = copy.deepcopy(good)
    boastful["reported_metrics"] = {"accuracy": 1.0, "reward": 99.0, "em": 1.0}
    scored = replay(parse_submission(encode(boastful)), env=replay_env, allow_local=True, progress=False)
    assert scored["metrics"] == honest["metrics"] and scored["metrics"]["accuracy"] < 1.0


def test_a_submission_made_in_another_setting_replays_in_the_canonical_one(good, replay_env):
    """The recorded setting is informational: a bf16 (or GPU) submission replays in float32 to the same numbers."""
    from ragenv.leaderboard.replay import replay

    honest = replay(parse_submission(encode(good)), env=replay_env, allow_local=True, progress=False)
    elsewhere = copy.deepcopy(good)
    elsewhere["llm"]["numerics"] = {"dtype": "bfloat16", "device": "cuda", "hardware": "NVIDIA H200"}
    scored = replay(parse_submission(encode(elsewhere)), env=replay_env, allow_local=True, progress=False)
    assert scored["metrics"] == honest["metrics"]
    assert scored["numerics"]["dtype"] == "float32" and scored["numerics"]["canonical"] is True
    assert scored["llm"]["numerics"]["dtype"] == "bfloat16"  # what the submitter said stays on record
    assert {"ragenv", "git_commit", "torch", "transformers", "numpy"} <= set(scored["provenance"])


def test_replay_in_a_non_canonical_setting_must_be_asked_for(good, small_dataset, small_env):
    """An environment in bfloat16 replays only when the caller names that dtype: one line naming both settings."""
    from ragenv.errors import ConfigError
    from ragenv.evaluate import EvalConfig, make_env
    from ragenv.leaderboard.replay import check_setting, replay

    env = make_env(EvalConfig(dataset=str(small_dataset), split="test", llm=TEST_LLM, dtype="bfloat16"))
    assert env.unwrapped.scorer.numerics.canonical is False
    before = env.unwrapped.scorer.stats.forward_passes
    with pytest.raises(ConfigError) as caught:
        replay(parse_submission(encode(good)), env=env, allow_local=True, progress=False, source="sub.json")
    message = str(caught.value)
    assert "\n" not in message and "bfloat16" in message and "float32" in message and "--dtype bfloat16" in message
    assert env.unwrapped.scorer.stats.forward_passes == before  # refused before any LLM work
    check_setting(env.unwrapped.scorer, "bfloat16")  # asked for: accepted
    check_setting(small_env.unwrapped.scorer, None)  # canonical: always accepted
    env.close()


def test_other_actions_score_differently_and_are_accepted(good, replay_env):
    """Closed-book ([]), fewer than k passages, optional fields left out: all valid, each replayed as given."""
    from ragenv.leaderboard.replay import replay

    honest = replay(parse_submission(encode(good)), env=replay_env, allow_local=True, progress=False)
    other = copy.deepcopy(good)
    other["actions"][0]["passage_ids"] = []  # only two changed questions: new LLM work stays small
    other["actions"][1]["passage_ids"] = other["actions"][1]["passage_ids"][:1]
    other.pop("reported_metrics")
    other["metadata"].pop("url")
    other["metadata"].pop("description")
    scored = replay(parse_submission(encode(other)), env=replay_env, allow_local=True, progress=False)
    assert scored["metrics"]["retrievals_per_question"] == 15 / 16
    assert scored["metrics"]["passages_per_question"] == (14 * 3 + 1) / 16
    assert [r["passage_ids"] for r in scored["per_question"]] == [a["passage_ids"] for a in other["actions"]]
    assert scored["per_question"][0]["logprob_gain"] == 0.0 and scored["per_question"][0]["hit@3"] == 0.0
    assert scored["per_question"][2:] == honest["per_question"][2:]
    assert scored["per_question"][:2] != honest["per_question"][:2]


# --------------------------------------------------------------------------- bad submissions (validator functions)


def _set(path: str, value):
    """A mutation that sets a dotted path (``actions.0.passage_ids``) in a submission document."""
    def mutate(doc):
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return doc
    return mutate


def _drop(path: str):
    def mutate(doc):
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[part]
        del node[last]
        return doc
    return mutate


def _raw(text: bytes):
    return lambda doc: text


def _with_text(transform):
    """Mutate the JSON text of the good submission (for what a dict cannot hold: NaN tokens, duplicate keys)."""
    return lambda doc: transform(json.dumps(doc)).encode()


def _duplicate_question(doc):
    doc["actions"][1]["question_id"] = doc["actions"][0]["question_id"]
    return doc


def _extra_question(doc):
    doc["actions"].append({"question_id": "nq-99999", "passage_ids": []})
    return doc


def _missing_question(doc):
    doc["actions"].pop()
    return doc


def _unknown_passage(doc):
    doc["actions"][2]["passage_ids"] = ["p0000000000000000"]
    return doc


def _deep(doc):
    return ("[" * 5000 + "]" * 5000).encode()


PARSE_CASES = {  # name: (mutation, words the one-line message must contain)
    "empty file": (_raw(b"  \n"), ["file is empty"]),
    "not json": (_raw(b"{'env_id': 'RAGRetrieval-v0'}"), ["not valid JSON", "line 1 column 2"]),
    "not utf-8": (_raw(b'{"env_id": "\xff\xfe"}'), ["not UTF-8", "0xff"]),
    "top level list": (_raw(b"[1, 2, 3]"), ["top level", "a list of 3 items"]),
    "nan": (_with_text(lambda t: t.replace('"reported_metrics": {', '"reported_metrics": {"claimed": NaN, ')),
            ["field reported_metrics.claimed", "finite number", "NaN"]),
    "infinite by overflow": (_with_text(lambda t: t.replace('"cost_per_passage": 0.02', '"cost_per_passage": 1e999')),
                             ["field env_options.cost_per_passage", "finite number", "1e999"]),
    "duplicate key": (_with_text(lambda t: t.replace('"env_id": "RAGRetrieval-v0"',
                                                     '"env_id": "RAGRetrieval-v0", "env_id": "RAGRetrieval-v0"')),
                      ["duplicate key", "env_id"]),
    "deep nesting": (_deep, ["nested more than 32 levels"]),
    "huge integer": (_with_text(lambda t: t.replace('"k": 3', '"k": ' + "9" * 5000)), ["not valid JSON", "digits"]),
    "oversized": (_raw(b" " * (MAX_SUBMISSION_BYTES + 1)), ["bytes; expected at most 20,971,520"]),
    "missing field": (_drop("metadata.name"), ["field metadata.name: missing"]),
    "unknown field": (_set("score", 0.9), ["field score: not part of the format"]),
    "string for int": (_set("env_options.k", "3"), ["field env_options.k", "valid integer", '"3"']),
    "bool for int": (_set("dataset.limit", True), ["field dataset.limit", "valid integer", "true"]),
    "int for string": (_set("actions.0.passage_ids", [12, 40]),
                       ["field actions[0].passage_ids[0]", "valid string", "12 (int)"]),
    "unknown env": (_set("env_id", "Nope-v0"), ["field env_id: unknown environment", "Nope-v0", "RAGRetrieval-v0"]),
    "unknown version": (_set("env_id", "RAGRetrieval-v1"), ['field env_id: unknown version "v1" of "RAGRetrieval"']),
    "missing env": (_drop("env_id"), ["field env_id: missing"]),
    "format version": (_set("format_version", 3), ["field format_version: expected 2", "found 3"]),
    "format version 1": (_set("format_version", 1),
                         ["field format_version: expected 2, found 1", "ragenv evaluate --submission"]),
    "unknown dtype": (_set("llm.numerics.dtype", "int4"), ["field llm.numerics.dtype: expected", "int4"]),
    "javascript url": (_set("metadata.url", "javascript:alert(1)"), ["field metadata.url", "javascript:alert(1)"]),
    "bad fingerprint": (_set("dataset.fingerprint", "abc"), ["field dataset.fingerprint", "^[0-9a-f]{64}$"]),
    "agent type": (_set("metadata.agent_type", "superhuman"), ["field metadata.agent_type: expected", "superhuman"]),
    "control characters": (_set("metadata.name", "\x1b[31mred"), ["field metadata.name"]),
    "negative cost": (_set("env_options.cost_per_passage", -1.0),
                      ["field env_options.cost_per_passage", "greater than or equal to 0"]),
    "unknown reward": (_set("env_options.reward", "vibes"), ["field env_options.reward: expected", "vibes"]),
    "no actions": (_set("actions", []), ["field actions", "at least 1 item"]),
    "too many passages": (_set("actions.0.passage_ids", ["pa", "pb", "pc", "pd"]),
                          ["field actions[0].passage_ids: expected at most 3 passage ids", "found 4"]),
    "duplicate passage": (_set("actions.0.passage_ids", ["pa", "pa"]),
                          ["field actions[0].passage_ids: expected distinct", "pa"]),
    "duplicate question": (_duplicate_question, ["field actions[1].question_id: expected each question once"]),
}

ENV_CASES = {  # pass the schema, fail against the environment
    "data fingerprint": (_set("dataset.fingerprint", "0" * 64), ["field dataset.fingerprint: expected", "other data"]),
    "llm fingerprint": (_set("llm.fingerprint", "1" * 64), ["field llm.fingerprint: expected", "another model"]),
    "prompt version": (_set("llm.prompt_version", "rag-qa-v0"), ["field llm.prompt_version: expected 'rag-qa-v1'"]),
    "missing question": (_missing_question, ["field actions: expected one action for each of the 16", "1 missing"]),
    "extra question": (_extra_question, ["field actions[16].question_id: expected a question of", "nq-99999"]),
    "unknown passage": (_unknown_passage, ["field actions[2].passage_ids[0]: expected a passage id of corpus",
                                           "p0000000000000000"]),
    "other k": (_set("env_options.k", 5), ["field env_options.k: expected 3", "found 5"]),
    "other split": (_set("dataset.split", "train"), ["field dataset.split: expected 'test'", "train"]),
    "limit too large": (_set("dataset.limit", 500), ["field dataset.limit: expected at most 16", "500"]),
}


def _message(mutation, good, env=None) -> str:
    document = mutation(copy.deepcopy(good))
    data = document if isinstance(document, bytes) else encode(document)
    with pytest.raises(SubmissionError) as caught:
        sub = parse_submission(data, "sub.json")
        if env is not None:
            from ragenv.leaderboard.replay import check_against_env

            check_against_env(sub, env, "sub.json")
    return str(caught.value)


@pytest.mark.unit
@pytest.mark.parametrize("case", list(PARSE_CASES))
def test_bad_submission_is_rejected_by_the_parser(case, committed):
    mutation, needles = PARSE_CASES[case]
    message = _message(mutation, committed)
    assert "\n" not in message and len(message) < 400 and message.startswith("sub.json")
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize("case", list(ENV_CASES))
def test_bad_submission_is_rejected_against_the_environment(case, good, replay_env):
    mutation, needles = ENV_CASES[case]
    message = _message(mutation, good, replay_env)
    assert "\n" not in message and message.startswith("sub.json")
    for needle in needles:
        assert needle in message, message


def test_every_bad_submission_has_its_own_message(good, replay_env):
    messages = [_message(m, good) for m, _ in PARSE_CASES.values()]
    messages += [_message(m, good, replay_env) for m, _ in ENV_CASES.values()]
    assert len(messages) == len(PARSE_CASES) + len(ENV_CASES) >= 15
    assert len(set(messages)) == len(messages)


def test_replay_refuses_what_it_must_not_load(good):
    """Names the submission may not make the leaderboard read or fetch; a known but unbuilt env."""
    from ragenv.leaderboard.replay import replay

    cases = {
        "local dataset": (good, False, ["field dataset.name", "--allow-local"]),
        "hub model": (_set("llm.name", "evil/model")(copy.deepcopy(good)), True,
                      ["field llm.name", "evil/model", "never downloads"]),
        "local path model": (_set("llm.name", "/etc/passwd")(copy.deepcopy(good)), True,
                             ["field llm.name", "/etc/passwd"]),
    }
    for name, (document, allow_local, needles) in cases.items():
        with pytest.raises(SubmissionError) as caught:
            replay(parse_submission(encode(document), "sub.json"), allow_local=allow_local, progress=False,
                   source="sub.json")
        for needle in needles:
            assert needle in str(caught.value), (name, str(caught.value))


# --------------------------------------------------------------------------- bad submissions (command line)


def test_cli_rejects_bad_submissions_in_one_line(good, evaluated, tmp_path):
    cases = {
        "garbage.json": (b"\x00\x01 not json", ["not valid JSON"]),
        "fingerprint.json": (encode(_set("dataset.fingerprint", "0" * 64)(copy.deepcopy(good))),
                             ["field dataset.fingerprint", "other data"]),
        "passage.json": (encode(_unknown_passage(copy.deepcopy(good))), ["field actions[2].passage_ids[0]"]),
        "env.json": (encode(_set("env_id", "RAGRetrieval-v7")(copy.deepcopy(good))), ['unknown version "v7"']),
    }
    for name, (data, needles) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert_one_line_error(run_cli("leaderboard", "evaluate", str(path), "--allow-local"), name, *needles)
    markup = tmp_path / "markup.json"  # rich markup in a message must print as text, not crash the CLI
    markup.write_text('{"env_id": "[/red][bold]x"}')
    assert_one_line_error(run_cli("leaderboard", "evaluate", str(markup)), "unknown environment", '"[/red][bold]x"')
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as handle:  # sparse: the size check must come before any read
        handle.truncate(MAX_SUBMISSION_BYTES + 1)
    assert_one_line_error(run_cli("leaderboard", "evaluate", str(huge)), "huge.json", "expected at most 20,971,520")
    assert_one_line_error(run_cli("leaderboard", "evaluate", str(tmp_path / "absent.json")), "does not exist")
    assert_one_line_error(run_cli("evaluate", "--agent", "bm25s", "--submission", str(tmp_path / "s.json"),
                                  "--url", "javascript:alert(1)"), "field metadata.url")
    assert_one_line_error(run_cli("evaluate", "--env", "SmartRAGText-v0", "--submission", str(tmp_path / "s.json")),
                          "--submission", "RAGRetrieval-v0, SmartRAG-v0", "found 'SmartRAGText-v0'")
    assert not (tmp_path / "s.json").exists()
