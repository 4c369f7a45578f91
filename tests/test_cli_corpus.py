"""``--corpus STORE`` on every command that builds an environment: demo, train ppo, train r3, smartrag alpha-sweep
and bench, as a user runs them (``ragenv ...`` in a fresh process).

One tiny store over real nq passages cut to 40 words (short prompts keep SmolLM2 fast): the gold passages of nq
test's first question and of nq train's first, and 150 others; nq test's second question has none there. It
lives in a private cache (its ``corpora/``, so ``--corpus tiny-nq`` finds it by name) whose converted models are
the session's.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support import TEST_LLM, assert_one_line_error, run_cli

STORE = "tiny-nq"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("cli-corpus-cache")
    models = Path(os.environ["RAGENV_CACHE"]) / "models"
    models.mkdir(parents=True, exist_ok=True)
    (cache / "models").symlink_to(models, target_is_directory=True)
    return cache


@pytest.fixture(scope="module")
def store(nq, cache):
    from ragenv.corpus.ingest import ingest

    test, train = nq.split("test"), nq.split("train")
    gold = {*test[0].gold_passage_ids, *train[0].gold_passage_ids}
    left_out = gold | set(test[1].gold_passage_ids)
    passages = [nq.corpus[nq.corpus.row(pid)] for pid in sorted(gold)]
    passages += [p for p in nq.corpus.passages[3000:3200] if p.id not in left_out][:150]
    source = cache / "tiny-nq.jsonl"
    source.write_text("".join(json.dumps({"id": p.id, "title": p.title, "text": " ".join(p.text.split()[:40])}) + "\n"
                              for p in passages))
    return ingest(source, cache / "corpora" / STORE, progress=False)


@pytest.fixture(scope="module")
def over_store(nq, store):
    """nq over the store, as every command serves it."""
    from ragenv.data import Corpus

    return nq.with_corpus(Corpus.from_store(store))


def ragenv(cache: Path, *args: str, timeout: int = 300):
    """``ragenv ARGS`` over the private cache, on one torch thread, printing lines of up to 300 characters."""
    return run_cli(*args, env={"RAGENV_CACHE": str(cache), "OMP_NUM_THREADS": "1", "COLUMNS": "300"},
                   timeout=timeout)


def words(text: str) -> str:
    """Every run of whitespace as one space (tables pad their titles)."""
    return " ".join(text.split())


# --------------------------------------------------------------------------- model-free


@pytest.fixture(scope="module")
def unknown_corpus_error(cache) -> str:
    """The one line ``evaluate --corpus nosuch`` prints: every other command must print the same."""
    result = ragenv(cache, "evaluate", "--llm", TEST_LLM, "--corpus", "nosuch")
    assert_one_line_error(result, "no corpus store at", "nosuch")
    return result.stderr.strip()


@pytest.mark.unit
@pytest.mark.parametrize("command", [
    ["demo", "--limit", "2"],
    ["train", "ppo", "--limit", "2", "--steps", "8"],
    ["train", "r3", "--limit", "2", "--epochs", "1"],
    ["smartrag", "alpha-sweep", "--limit", "2", "--eval-limit", "2", "--steps", "8"],
    ["bench", "--quick"],
], ids=["demo", "train-ppo", "train-r3", "alpha-sweep", "bench"])
def test_an_unknown_corpus_is_the_one_line_error_evaluate_gives(command, cache, unknown_corpus_error, tmp_path):
    output = tmp_path / "out"
    extra = ["--output", str(output.with_suffix(".png"))] if command[0] == "smartrag" else \
        ["--output", str(output)] if command[0] == "train" else []
    result = ragenv(cache, *command, "--llm", TEST_LLM, *extra, "--corpus", "nosuch", timeout=120)
    assert result.returncode == 1 and result.stderr.strip() == unknown_corpus_error
    assert not list(tmp_path.iterdir())  # refused before anything was trained or written


@pytest.mark.unit
def test_bench_measures_over_the_store(store, over_store):
    from ragenv.bench import BenchConfig, bench_dataset, results_table

    dataset = bench_dataset(BenchConfig(dataset="nq", corpus=str(store.path)))
    assert dataset.corpus.store is not None and len(dataset.corpus) == len(store)
    assert dataset.split_fingerprint("test") == over_store.split_fingerprint("test")
    assert [bool(q.gold_passage_ids) for q in dataset.split("test")[:2]] == [True, False]
    machine = {"cpu": "cpu", "cores": 2, "device": "cpu", "dtype": "float32", "torch": "2"}
    table = results_table({"machine": machine, "config": {"llm": TEST_LLM, "corpus": STORE}, "results": {},
                           "targets": {}})
    assert f"| corpus {STORE} |" in str(table.title)


# --------------------------------------------------------------------------- with SmolLM2


def test_demo_runs_over_the_store_and_checks_its_dense_index(cache, store, over_store, nq, tmp_path):
    from ragenv.encoder import Encoder
    from ragenv.index.dense import DenseIndex

    # The dataset's own corpus has a dense index here; the store has none: the demo must look at the store's.
    own = cache / "indexes" / DenseIndex.cache_path(nq.corpus, Encoder()).name
    own.mkdir(parents=True)
    (own / "manifest.json").write_text("{}")
    result = ragenv(cache, "demo", "--corpus", STORE, "--limit", "2", "--llm", TEST_LLM, "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    out = words(result.stdout)
    assert f"dense skipped: its index is not built yet; `ragenv demo --agents oracle,bm25,dense,closed-book,random " \
           f"--corpus {STORE}`" in out
    assert f"RAGRetrieval-v0 | nq/test first 2 | {TEST_LLM} | corpus {STORE}" in out
    assert "1 of 2 questions have no gold passage in this corpus" in out
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == ["bm25", "closed-book", "oracle", "random"]
    store_ids = {store[row].id for row in range(len(store))}
    for path in tmp_path.glob("*.json"):
        document = json.loads(path.read_text())
        assert document["config"]["corpus"] == STORE
        assert document["dataset_fingerprint"] == over_store.split_fingerprint("test") \
            != nq.split_fingerprint("test")
        assert document["metrics"]["questions_without_gold"] == 1
        assert all(set(r["passage_ids"]) <= store_ids for r in document["per_question"])
    oracle = json.loads((tmp_path / "oracle.json").read_text())
    assert oracle["per_question"][0]["passage_ids"] == list(over_store.split("test")[0].gold_passage_ids)
    assert oracle["metrics"]["hit@3"] == 1.0  # over the one question with gold


def _store_record(store) -> dict:
    return {"corpus": STORE, "corpus_fingerprint": store.fingerprint}


def test_train_ppo_over_the_store_records_it(cache, store, tmp_path):
    folder = tmp_path / "ppo"
    result = ragenv(cache, "train", "ppo", "--corpus", STORE, "--split", "train", "--limit", "1", "--llm", TEST_LLM,
                    "--steps", "16", "--n-steps", "8", "--batch-size", "8", "--output", str(folder))
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((folder / "agent.json").read_text())
    assert {key: meta.get(key) for key in ("corpus", "corpus_fingerprint")} == _store_record(store)
    assert f"--agent ppo:{folder} --dataset nq --split test --llm {TEST_LLM} --corpus {STORE} --alpha 0.2" \
        in words(result.stdout)


def test_alpha_sweep_over_the_store_says_so(cache, store, over_store, tmp_path):
    png = tmp_path / "sweep.png"
    result = ragenv(cache, "smartrag", "alpha-sweep", "--corpus", STORE, "--split", "train", "--eval-split", "train",
                    "--limit", "1", "--eval-limit", "1", "--llm", TEST_LLM, "--steps", "8", "--alphas", "0",
                    "--output", str(png))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"PPO on SmartRAG-v0 | nq/train | {TEST_LLM} | corpus {STORE}" in words(result.stdout)
    assert json.loads(png.with_suffix(".json").read_text())["corpus"] == STORE
    evaluation = json.loads((tmp_path / "sweep" / "alpha-0" / "eval.json").read_text())
    assert evaluation["config"]["corpus"] == STORE
    assert evaluation["dataset_fingerprint"] == over_store.split_fingerprint("train")
    agent = json.loads((tmp_path / "sweep" / "alpha-0" / "agent.json").read_text())
    assert {key: agent.get(key) for key in ("corpus", "corpus_fingerprint")} == _store_record(store)


def test_train_r3_over_a_store_folder_records_it(cache, store, tmp_path):
    folder = tmp_path / "r3"
    result = ragenv(cache, "train", "r3", "--corpus", str(store.path), "--split", "train", "--limit", "1",
                    "--llm", TEST_LLM, "--epochs", "1", "--first-stage", "bm25s", "--num-candidates", "3", "--k", "2",
                    "--batch-size", "1", "--output", str(folder))
    assert result.returncode == 0, result.stderr[-3000:]
    training = json.loads((folder / "agent.json").read_text())["training"]
    assert {key: training.get(key) for key in ("corpus", "corpus_fingerprint")} == _store_record(store)
    assert training["questions"] == 1 and training["feedback_llm_sequences"] > 0
    assert f"--agent r3:{folder} --dataset nq --split test --llm {TEST_LLM} --corpus {store.path}" \
        in words(result.stdout)
