"""BM25 backends on a small real slice of wiki-mini: the search contract, the disk cache,
and agreement between bm25s and the Lucene reference (pyserini)."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from ragenv.data import Corpus
from ragenv.errors import ConfigError, DataError
from ragenv.index import bm25
from ragenv.index.base import index_path
from ragenv.index.bm25 import BM25Config, Bm25sIndex, LuceneAnalyzer, PyseriniIndex
from ragenv.index.registry import make_index

ENV_BEFORE = {name: os.environ.get(name) for name in ("OPENAI_API_KEY", "JAVA_HOME")}
BACKENDS = ("bm25s", "pyserini")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private index cache for this module, so every index here is built by these tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAGENV_CACHE", str(tmp_path_factory.mktemp("bm25-cache")))
        yield


@pytest.fixture(scope="module")
def subset(cache, nq):
    """300 NQ gold passages plus 200 random DPR Wikipedia passages, and the NQ questions answerable in it."""
    passages = nq.corpus.passages
    corpus = Corpus("test-bm25", passages[:300] + passages[-200:])
    questions = [q for q in nq.questions if q.gold_passage_ids and all(g in corpus for g in q.gold_passage_ids)]
    assert len(questions) >= 100
    return corpus, questions


@pytest.fixture(scope="module")
def indexes(subset):
    corpus, _ = subset
    return {"bm25s": Bm25sIndex(corpus), "pyserini": PyseriniIndex(corpus)}


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Share of common passages in two top-k lists (1 when both are empty)."""
    first, second = set(a[a >= 0].tolist()), set(b[b >= 0].tolist())
    if not first and not second:
        return 1.0
    return len(first & second) / max(len(first), len(second))


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_contract(indexes, subset, backend):
    corpus, questions = subset
    queries = [q.question for q in questions[:30]]
    rows, scores = indexes[backend].search(queries, 10)
    assert rows.shape == scores.shape == (30, 10)
    assert rows.dtype == np.int64 and scores.dtype == np.float32
    assert ((rows >= -1) & (rows < len(corpus))).all()
    assert (np.diff(scores, axis=1) <= 1e-6).all(), "scores must be best first"
    assert ((rows == -1) == (scores == 0)).all()
    for row in rows:
        found = row[row >= 0]
        assert len(set(found.tolist())) == len(found)
        assert (row[len(found):] == -1).all(), "padding only after the matches"
    assert (rows[:, 0] >= 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_finds_gold_passages(indexes, subset, backend):
    corpus, questions = subset
    sample = questions[:20]
    rows, _ = indexes[backend].search([q.question for q in sample], 10)
    hits = [corpus.row(q.gold_passage_ids[0]) in rows[i] for i, q in enumerate(sample)]
    assert np.mean(hits) >= 0.8  # measured: 0.95 for both backends


@pytest.mark.parametrize("backend", BACKENDS)
def test_k_larger_than_corpus(indexes, subset, backend):
    corpus, questions = subset
    k = len(corpus) + 7
    rows, scores = indexes[backend].search([questions[0].question, "water"], k)
    assert rows.shape == scores.shape == (2, k)
    assert (rows[:, -7:] == -1).all()
    for row in rows:
        found = row[row >= 0]
        assert 0 < len(found) <= len(corpus) and len(set(found.tolist())) == len(found)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_queries(indexes, backend):
    index = indexes[backend]
    rows, scores = index.search(["", "   ", "the of and", "zzqxjkv"], 5)
    assert rows.shape == (4, 5) and (rows == -1).all() and (scores == 0).all()
    rows, scores = index.search([], 5)
    assert rows.shape == scores.shape == (0, 5)
    rows, scores = index.search(["water"], 0)
    assert rows.shape == scores.shape == (1, 0)
    with pytest.raises(TypeError):
        index.search("a single string", 5)
    with pytest.raises(ValueError):
        index.search(["water"], -1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_one_matches_batch(indexes, subset, backend):
    _, questions = subset
    index = indexes[backend]
    queries = [q.question for q in questions[:5]]
    rows, scores = index.search(queries, 10)
    for i, query in enumerate(queries):
        row, score = index.search_one(query, 10)
        np.testing.assert_array_equal(row, rows[i])
        np.testing.assert_allclose(score, scores[i], rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cache_is_reused(indexes, subset, backend, monkeypatch):
    corpus, questions = subset
    first = indexes[backend]
    manifest = first.path / "manifest.json"
    before = manifest.stat().st_mtime_ns

    def no_build(*args, **kwargs):
        raise AssertionError("the cached index was rebuilt")

    monkeypatch.setattr(bm25, "_build_bm25s_index", no_build)
    monkeypatch.setattr(bm25, "_build_lucene_index", no_build)
    second = type(first)(corpus, first.config)
    assert second.path == first.path
    assert manifest.stat().st_mtime_ns == before
    queries = [q.question for q in questions[:10]]
    np.testing.assert_array_equal(second.search(queries, 10)[0], first.search(queries, 10)[0])


def test_changed_corpus_gets_new_index(subset):
    corpus, _ = subset
    passages = list(corpus.passages)
    passages[3] = dataclasses.replace(passages[3], text=passages[3].text + " Zanzibarquux.")
    changed = Corpus(corpus.name, passages)
    old, new = Bm25sIndex(corpus), Bm25sIndex(changed)
    assert new.path != old.path and old.path.is_dir() and new.path.is_dir()
    assert new.search_one("zanzibarquux", 3)[0][0] == 3
    assert old.search_one("zanzibarquux", 3)[0][0] == -1
    config = dataclasses.asdict(BM25Config())
    assert index_path("pyserini", config, changed) != index_path("pyserini", config, corpus)


def test_backends_agree(indexes, subset):
    _, questions = subset
    queries = [q.question for q in questions]
    rows_s, scores_s = indexes["bm25s"].search(queries, 10)
    rows_p, scores_p = indexes["pyserini"].search(queries, 10)
    overlaps = [overlap(rows_s[i], rows_p[i]) for i in range(len(queries))]
    assert np.mean(overlaps) >= 0.95  # measured: 1.0, every top-10 list identical
    same = rows_s == rows_p
    np.testing.assert_allclose(scores_s[same], scores_p[same], atol=2e-4)  # Anserini rounds to 1e-4


def test_other_analysis_settings_agree(subset):
    corpus, questions = subset
    config = BM25Config(k1=1.2, b=0.75, stemmer="none", stopwords="none")
    queries = [q.question for q in questions[:60]]
    rows_s, _ = Bm25sIndex(corpus, config).search(queries, 10)
    rows_p, _ = PyseriniIndex(corpus, config).search(queries, 10)
    assert np.mean([overlap(rows_s[i], rows_p[i]) for i in range(len(queries))]) >= 0.95


def test_analyzer_matches_lucene(indexes, subset):
    corpus, questions = subset
    lucene = bm25._import_pyserini()
    reference = lucene.Analyzer(lucene.get_lucene_analyzer())
    ours = LuceneAnalyzer()
    tricky = [
        "The U.S. President's 2 dogs",
        "don't stop at 3.5 or 1,000 U.S.A. e.g. it's James' x_y a b c",
        "Technology apologies possibly responsibly us vs os 5s",
        "İstanbul ΟΔΟΣ naïve café Ångström 東京タワー and ワイリー",
        "kitchen\u200bbrigade left-to-right (C++) #1 @user e-mail",
        "Serenade in B\u266d major, Henry VIII \u2167, \u24b6bc \u00a9 2019\u00ae \U0001f600",
    ]
    for text in tricky:
        assert ours(text) == reference.analyze(text), text
    texts = corpus.contents + [q.question for q in questions]
    same = [ours(t) == reference.analyze(t) for t in texts]
    assert np.mean(same) >= 0.995  # measured: all of them (all but 1 of 30,761 over wiki-mini)


def test_exact_length_norm_is_plain_bm25s(subset):
    import bm25s

    corpus, _ = subset
    analyze = LuceneAnalyzer()
    tokens = [analyze(text) for text in corpus.contents]
    reference = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    reference.index(tokens, show_progress=False)
    vocab = reference.vocab_dict
    data, indices, indptr = bm25._bm25_matrix(
        [[vocab[t] for t in doc] for doc in tokens], len(reference.scores["indptr"]) - 1, 0.9, 0.4, "exact"
    )
    np.testing.assert_array_equal(indptr, reference.scores["indptr"])
    np.testing.assert_array_equal(indices, reference.scores["indices"])
    np.testing.assert_allclose(data, reference.scores["data"], rtol=1e-5)


def test_lucene_length_encoding(indexes):
    from jnius import autoclass  # the JVM runs once the pyserini index exists

    small_float = autoclass("org.apache.lucene.util.SmallFloat")
    for n in list(range(3000)) + [10**5, 10**6 + 3, 2**31 - 1]:
        assert bm25._lucene_length(n) == small_float.byte4ToInt(small_float.intToByte4(n)), n
    assert [bm25._lucene_length(n) for n in (23, 24, 100, 1000)] == [23, 24, 96, 984]


def test_config_is_checked(subset):
    corpus, _ = subset
    with pytest.raises(ConfigError):
        BM25Config(stemmer="snowball")
    with pytest.raises(ConfigError):
        BM25Config(b=1.5)
    with pytest.raises(ConfigError):
        BM25Config(k1=-1)
    with pytest.raises(ConfigError):
        PyseriniIndex(corpus, BM25Config(length_norm="exact"))
    with pytest.raises(DataError):
        Bm25sIndex(Corpus("empty", []))


def test_registry_builds_bm25s(subset):
    corpus, _ = subset
    index = make_index("bm25s", corpus, k1=1.2)
    assert isinstance(index, Bm25sIndex) and index.config == BM25Config(k1=1.2)
    assert index.corpus is corpus


def test_pyserini_import_is_idempotent_and_leaves_environment(indexes):
    assert bm25._import_pyserini() is bm25._import_pyserini()
    assert {name: os.environ.get(name) for name in ENV_BEFORE} == ENV_BEFORE
