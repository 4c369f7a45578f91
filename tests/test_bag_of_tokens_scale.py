"""R3's bag-of-tokens index at scale (issue #22): built by streaming the corpus in chunks of rows into posting
lists on disk, opened memory-mapped, searched one query at a time without a dense [queries, N] matrix.
Checked against the one-shot scipy CSR matrix the index used to be, on a 300-passage store."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from ragenv.corpus.ingest import ingest
from ragenv.data import Corpus
from ragenv.errors import ConfigError
from ragenv.index.base import top_k_by_score

ENCODER = "all-MiniLM-L6-v2"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A private index cache per test, so every index here is built by the test itself."""
    monkeypatch.setenv("RAGENV_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def encoder():
    from ragenv.agents.r3.model import R3Encoder
    from ragenv.encoder import resolve_encoder_path

    return R3Encoder(resolve_encoder_path(ENCODER))


@pytest.fixture(scope="module")
def store(nq, tmp_path_factory) -> Corpus:
    """300 real wiki-mini passages ingested into a store from JSONL."""
    folder = tmp_path_factory.mktemp("bot-store")
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for p in nq.corpus.passages[5000:5300]:
            handle.write(json.dumps({"id": p.id, "title": p.title, "text": p.text}) + "\n")
    return Corpus.from_store(ingest(folder / "corpus.jsonl", folder / "bot-store", progress=False))


@pytest.fixture(scope="module")
def one_shot(store, encoder) -> sp.csr_matrix:
    """The index as it was built before (commit ab34840): the whole corpus tokenized at once, a set per passage."""
    texts = [store[row].contents for row in range(len(store))]
    ids = encoder.tokenizer(texts, add_special_tokens=False, truncation=True,
                            max_length=encoder.max_tokens["passage"])["input_ids"]
    indptr, indices = [0], []
    for row in ids:
        indices.extend(sorted(set(row) - set(encoder.special_ids)))
        indptr.append(len(indices))
    return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                         shape=(len(ids), encoder.vocab_size))


@pytest.fixture(scope="module")
def queries(nq, encoder) -> dict[str, np.ndarray]:
    """Query weight vectors: the untrained vocabulary head (elu1p: every wordpiece > 0), the questions' own
    wordpieces (binary, many ties) and sparse random weights."""
    texts = [q.question for q in nq.split("dev")[:6]]
    rng = np.random.default_rng(0)
    sparse = rng.random((4, encoder.vocab_size), dtype=np.float32) * (rng.random((4, encoder.vocab_size)) < 0.01)
    return {"live": encoder.encode_numpy(texts, "query", ("vocab",))["vocab"],
            "words": encoder.bag_of_tokens(texts, "query").toarray(),
            "sparse": sparse.astype(np.float32)}


def make(store, encoder, **options):
    from ragenv.agents.r3.model import BagOfTokensIndex

    return BagOfTokensIndex(store, encoder, ENCODER, progress=False, **options)


def test_streamed_build_gives_the_one_shot_postings_without_materialising(store, encoder, one_shot,
                                                                          forbid_materialising):
    index = make(store, encoder, chunk_rows=64)  # 5 chunks, the last one short
    reference = one_shot.tocsc()
    reference.sort_indices()
    assert np.array_equal(index.indptr, reference.indptr) and np.array_equal(index.rows, reference.indices)
    assert index.rows.dtype == np.uint32 and index.indptr.dtype == np.int64
    assert sorted(p.name for p in index.path.iterdir()) == ["indptr.npy", "manifest.json", "meta.json", "rows.npy"]
    assert (encoder.bag_of_tokens([store[7].contents]) != one_shot[7]).nnz == 0  # the helper, one text


def test_open_maps_the_built_files_and_does_not_rebuild(store, encoder, monkeypatch):
    from ragenv.agents.r3.model import BagOfTokensIndex

    built = make(store, encoder)

    def no_build(self, folder):
        raise AssertionError("the index was built again")

    monkeypatch.setattr(BagOfTokensIndex, "_build", no_build)
    opened = make(store, encoder)
    assert opened.path == built.path
    assert isinstance(opened.rows, np.memmap) and isinstance(opened.indptr, np.memmap)
    assert Path(opened.rows.filename).resolve() == (opened.path / "rows.npy").resolve()


@pytest.mark.parametrize("kind", ["live", "words", "sparse"])
def test_search_equals_the_dense_matrix_search(store, encoder, one_shot, queries, kind):
    index = make(store, encoder)
    index.BLOCK = 97  # many blocks per query, common wordpieces' lists split between blocks (~20k entries in all)
    weights = queries[kind]
    dense = np.asarray((one_shot @ weights.T).T)  # [queries, N]: what search_vectors computed before
    for n in range(len(weights)):
        assert np.array_equal(index.scores(weights[n]), dense[n])  # bit for bit
    for k in (10, 400):  # 400 > N: -1 padding
        rows, scores = index.search_vectors(weights, k)
        expected_rows, expected_scores = top_k_by_score(dense, k)
        assert rows.dtype == np.int64 and scores.dtype == np.float32
        assert np.array_equal(rows, expected_rows) and np.array_equal(scores, expected_scores)
    if kind == "live":
        assert (weights > 0).mean() > 0.9  # elu1p: the exact search reads (almost) every posting list


def test_top_terms_pruning(store, encoder, one_shot, queries):
    weights = queries["live"]
    exact = make(store, encoder).search_vectors(weights, 20)
    assert all(np.array_equal(a, b) for a, b in zip(make(store, encoder, max_query_terms=30522).search_vectors(
        weights, 20), exact))
    words = queries["words"]
    enough = int((words != 0).sum(axis=1).max())
    pruned = make(store, encoder, max_query_terms=enough).search_vectors(words, 20)
    assert all(np.array_equal(a, b) for a, b in zip(pruned, make(store, encoder).search_vectors(words, 20)))
    # Fewer terms than the query has: the same as a dense search with all but the T heaviest weights zeroed.
    index = make(store, encoder, max_query_terms=5)
    kept = np.zeros_like(weights)
    for n, w in enumerate(weights):
        terms = index.query_terms(w)
        assert len(terms) == 5 and w[terms].min() >= np.sort(w[index.lengths > 0])[-5]
        kept[n, terms] = w[terms]
    for w in words:  # equal weights: the lowest ids are kept
        assert np.array_equal(index.query_terms(w), np.flatnonzero((w != 0) & (index.lengths > 0))[:5])
    rows, scores = index.search_vectors(weights, 20)
    expected_rows, expected_scores = top_k_by_score(np.asarray((one_shot @ kept.T).T), 20)
    assert np.array_equal(rows, expected_rows) and np.array_equal(scores, expected_scores)
    assert not np.array_equal(rows, exact[0])
    with pytest.raises(ConfigError, match="max_query_terms"):
        make(store, encoder, max_query_terms=0)
