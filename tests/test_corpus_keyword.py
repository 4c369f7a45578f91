"""Any question set over any corpus: ``gym.make(..., corpus=STORE)`` and ``--corpus``.

Real data (the small nq fixture: its corpus.jsonl becomes stores in several shapes) and the real
small LLM (SmolLM2, shared with small_env) for the one evaluation.
"""
from __future__ import annotations

import json
from dataclasses import replace

import gymnasium as gym
import pytest

import ragenv  # noqa: F401  (registers the environments)
from ragenv.corpus.ingest import ingest
from ragenv.corpus.synth import synthesize
from ragenv.data import Corpus, load_dataset
from ragenv.errors import ConfigError, DataError
from tests.support import TEST_LLM, assert_one_line_error, run_cli


def _rows(small_dataset) -> list[dict]:
    return [json.loads(line) for line in (small_dataset / "corpus.jsonl").read_text().splitlines()]


def _store(tmp_path, name: str, rows: list[dict]):
    source = tmp_path / f"{name}.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ingest(source, tmp_path / name, progress=False)


@pytest.fixture(scope="module")
def stores(small_dataset, tmp_path_factory) -> dict:
    """Stores over the small fixture's passages: same ids plus distractors, other ids, half the gold, no gold."""
    folder = tmp_path_factory.mktemp("corpus-keyword")
    rows = _rows(small_dataset)
    data = load_dataset(str(small_dataset))
    gold = {g for q in data.split("test") for g in q.gold_passage_ids}
    first_half = {g for q in data.split("test")[:8] for g in q.gold_passage_ids}
    same = _store(folder, "same-ids", rows)
    synthesize(Corpus.from_store(same), 200, folder / "with-distractors", seed=0, progress=False)
    renamed = _store(folder, "other-ids", [{**r, "id": f"doc-{i}"} for i, r in enumerate(rows)])
    half = _store(folder, "half-gold", [r for r in rows if r["id"] not in gold - first_half])
    none = _store(folder, "no-gold", [r for r in rows if r["id"] not in gold])
    return {"data": data, "same": same.path, "distractors": folder / "with-distractors", "renamed": renamed.path,
            "half": half.path, "none": none.path}


def _make(small_dataset, small_env, corpus, **kwargs):
    return gym.make("RAGRetrieval-v0", dataset=str(small_dataset), split="test", llm=TEST_LLM, corpus=str(corpus),
                    features=False, scorer=small_env.unwrapped.scorer, **kwargs)


def test_questions_over_a_bigger_store_keep_their_gold_by_id(small_dataset, small_env, stores):
    env = _make(small_dataset, small_env, stores["distractors"])
    base = env.unwrapped
    assert len(base.corpus) == len(stores["data"].corpus) + 200 and base.corpus.store is not None
    assert base.dataset.split_fingerprint("test") != stores["data"].split_fingerprint("test")  # another corpus
    assert [q.gold_passage_ids for q in base.questions] == [q.gold_passage_ids for q in stores["data"].split("test")]
    observation, info = env.reset(seed=0)
    assert all(0 <= r < len(base.corpus) for r in observation["candidate_ids"] if r >= 0)


def test_gold_passages_are_found_by_text_under_other_ids(small_dataset, small_env, stores):
    base = _make(small_dataset, small_env, stores["renamed"]).unwrapped
    original = {q.id: q for q in stores["data"].split("test")}
    for question in base.questions:
        assert question.gold_passage_ids and all(g.startswith("doc-") for g in question.gold_passage_ids)
        own = stores["data"].corpus
        texts = {own[own.row(g)].text for g in original[question.id].gold_passage_ids}
        assert {base.corpus[base.corpus.row(g)].text for g in question.gold_passage_ids} == texts


def test_questions_without_gold_are_counted_and_left_out_of_hit(small_dataset, small_env, stores):
    from ragenv.evaluate import EvalConfig, evaluate

    env = _make(small_dataset, small_env, stores["half"], generate_answers=True, diagnostics=True)
    config = EvalConfig(agent="oracle", dataset=str(small_dataset), split="test", llm=TEST_LLM,
                        corpus=str(stores["half"]))
    result = evaluate(replace(config), env=env, progress=False, resume=False)
    without = sum(1 for q in env.unwrapped.questions if not q.gold_passage_ids)
    assert without == 8 and result["metrics"]["questions_without_gold"] == 8
    assert result["metrics"]["hit@3"] == 1.0  # the oracle finds gold wherever there is gold: over the other 8


def test_a_corpus_without_any_gold_passage_is_refused(small_dataset, small_env, stores):
    with pytest.raises(ConfigError, match=r"none of the 16 questions .* has a gold passage in corpus 'no-gold'"):
        _make(small_dataset, small_env, stores["none"])


@pytest.mark.parametrize("corpus, error, needle", [
    (5, ConfigError, "corpus must be a corpus store name or folder"),
    ("", ConfigError, "corpus must be a corpus store name or folder"),
    ("no-such-store", DataError, "no corpus store at"),
])
def test_bad_corpus_values_are_one_line_errors(small_dataset, small_env, corpus, error, needle):
    with pytest.raises(error) as caught:
        gym.make("RAGRetrieval-v0", dataset=str(small_dataset), split="test", llm=TEST_LLM, corpus=corpus,
                 features=False, scorer=small_env.unwrapped.scorer)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_cli_refuses_a_submission_over_another_corpus(stores, tmp_path):
    result = run_cli("evaluate", "--agent", "bm25s", "--corpus", str(stores["same"]), "--submission",
                     str(tmp_path / "s.json"))
    assert_one_line_error(result, "--submission", "own corpus", "drop --corpus")
    assert not (tmp_path / "s.json").exists()
