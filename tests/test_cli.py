"""The ragenv command as a user runs it: evaluation, caching, and one-line errors for bad input."""
from __future__ import annotations

import gzip
import json
import os
import shutil

import pytest

from tests.support import TEST_LLM, assert_one_line_error, private_cache, run_cli


def cache_entries() -> int:
    from ragenv.reward_cache import RewardCache

    return len(RewardCache())


@pytest.fixture(scope="module", autouse=True)
def own_reward_cache(tmp_path_factory):
    """This module's runs start from an empty reward cache (its first evaluate must compute), whatever ran
    before it in the session; the session's converted models and indexes are shared."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAGENV_CACHE", private_cache(tmp_path_factory.mktemp("cli-cache"))["RAGENV_CACHE"])
        yield


@pytest.fixture(scope="module")
def first_run(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "first.json"
    result = run_cli("evaluate", "--agent", "bm25s", "--dataset", str(small_dataset), "--split", "test",
                     "--limit", "6", "--llm", TEST_LLM, "--output", str(out))
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def test_evaluate_writes_the_documented_json(first_run):
    assert first_run["env"] == "RAGRetrieval-v0" and first_run["agent"] == "bm25s"
    assert first_run["n"] == 6 == len(first_run["per_question"])
    for key in ("reward", "answer_logprob", "em", "f1", "accuracy", "hit@3", "retrievals_per_question", "seconds"):
        assert key in first_run["metrics"]
    assert first_run["llm_work"]["model_loads"] == 1
    record = first_run["per_question"][0]
    assert {"question_id", "passage_ids", "reward", "generated_answer", "em"} <= set(record)
    assert not any({"question", "answers"} & set(r) for r in first_run["per_question"])  # ids, not the dataset


def test_second_identical_run_is_cached_and_identical(first_run, small_dataset, tmp_path):
    """The second run also asks for the texts (--texts): they are the dataset's; everything else is the same."""
    from ragenv.data import load_dataset

    out = tmp_path / "second.json"
    result = run_cli("evaluate", "--agent", "bm25s", "--dataset", str(small_dataset), "--split", "test",
                     "--limit", "6", "--llm", TEST_LLM, "--output", str(out), "--texts")
    assert result.returncode == 0, result.stderr
    second = json.loads(out.read_text())
    questions = {q.id: q for q in load_dataset(str(small_dataset)).questions}
    for with_texts, without in zip(second["per_question"], first_run["per_question"], strict=True):
        question = questions[with_texts["question_id"]]
        assert (with_texts.pop("question"), with_texts.pop("answers")) == (question.question, list(question.answers))
        assert with_texts.keys() == without.keys() and with_texts["passage_ids"] == without["passage_ids"]
    assert second["llm_work"]["model_loads"] == 0 and second["llm_work"]["forward_passes"] == 0
    assert second["metrics"]["cache_hit_rate"] == 1.0
    strip = lambda m: {k: v for k, v in m.items() if k not in ("seconds", "cache_hit_rate")}  # noqa: E731
    assert strip(second["metrics"]) == strip(first_run["metrics"])
    assert second["metrics"]["seconds"] < first_run["metrics"]["seconds"]


def test_unknown_names_give_one_line_errors(first_run, small_dataset):
    before = cache_entries()
    assert_one_line_error(run_cli("evaluate", "--agent", "nope", "--dataset", str(small_dataset)),
                          "unknown agent", "nope")
    assert_one_line_error(run_cli("evaluate", "--dataset", "nope"), "unknown dataset", "nope")
    assert_one_line_error(run_cli("evaluate", "--dataset", str(small_dataset), "--split", "test", "--llm", "nope"),
                          "unknown LLM", "nope")
    assert_one_line_error(run_cli("evaluate", "--env", "Nope-v0"), "unknown environment")
    assert_one_line_error(run_cli("evaluate", "--dataset", str(small_dataset), "--split", "validation"), "no split")
    assert cache_entries() == before  # nothing cached was lost


def test_missing_and_corrupt_data_give_one_line_errors(first_run, data_dir, tmp_path):
    before = cache_entries()
    assert_one_line_error(run_cli("data", "info", env={"RAGENV_DATA": str(tmp_path / "absent")}), "does not exist")
    broken = tmp_path / "data"
    shutil.copytree(data_dir, broken)
    os.chmod(broken / "nq_open", 0o755)
    target = broken / "nq_open" / "nq-open-oracle.jsonl.gz"
    os.chmod(target, 0o644)
    target.write_bytes(gzip.compress(b'{"question": "tampered"}\n'))
    assert_one_line_error(run_cli("data", "info", env={"RAGENV_DATA": str(broken)}),
                          "corrupt data file", "nq-open-oracle.jsonl.gz", "6a7f72b8")
    target.unlink()
    assert_one_line_error(run_cli("data", "info", env={"RAGENV_DATA": str(broken)}), "missing data file")
    assert cache_entries() == before


def test_corrupt_user_dataset_names_file_and_line(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text('{"id": "a", "title": "A", "text": "alpha"}\n{"id": "a", "text": "again"}\n')
    (folder / "questions.jsonl").write_text('{"id": "q", "question": "what?", "answers": ["alpha"]}\n')
    assert_one_line_error(run_cli("evaluate", "--dataset", str(folder), "--split", "all"),
                          "corpus.jsonl:2", "duplicate")


def test_data_info_prints_counts():
    result = run_cli("data", "info")
    assert result.returncode == 0, result.stderr
    assert "16,436" in result.stdout and "369" in result.stdout  # wiki-mini passages, nq test questions


def test_cache_commands(first_run):
    info = run_cli("cache", "info")
    assert info.returncode == 0 and "entries" in info.stdout
    check = run_cli("cache", "check")
    assert check.returncode == 0 and "integrity: ok" in check.stdout


@pytest.mark.unit
def test_each_environment_option_has_its_environments_name():
    """--k is RAGRetrieval-v0's passages per question, --top-n SmartRAG-v0's per retrieval: never one for the other."""
    from ragenv.errors import ConfigError
    from ragenv.evaluate import env_options_for

    assert env_options_for("RAGRetrieval-v0", k=2, cost_per_passage=0.0) == {"k": 2, "cost_per_passage": 0.0}
    assert env_options_for("SmartRAG-v0", top_n=2, alpha=0.1) == {"top_n": 2, "alpha": 0.1}
    for env_id, option, needle in [("SmartRAG-v0", {"k": 2}, "--top-n"), ("RAGRetrieval-v0", {"top_n": 2}, "--k"),
                                   ("SmartRAG-v0", {"cost_per_passage": 0.1}, "--alpha"),
                                   ("RAGRetrieval-v0", {"alpha": 0.1}, "--cost-per-passage")]:
        with pytest.raises(ConfigError, match=needle):
            env_options_for(env_id, **option)
