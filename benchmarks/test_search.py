"""Search queries per second over the real corpus (wiki-mini, 16,436 passages), top 20.

    RAGENV_DATA=../shared/data .venv/bin/python -m pytest benchmarks/test_search.py

BM25: bm25s as ragenv runs it (Lucene analysis and scores), pyserini/Lucene (the reference; skipped
when Java cannot start) and rank_bm25's BM25Okapi over the same analysed text (a reference point,
not used by ragenv); dense: query encoding (all-MiniLM-L6-v2) plus exact inner product. One query
per call (what an environment step does) and, where the backend batches, 100 at once.
"""
from __future__ import annotations

import pytest

QUERIES = 100
K = 20


@pytest.fixture(scope="module")
def queries(nq) -> list[str]:
    return [q.question for q in nq.split("test")[:QUERIES]]


def _one_per_call(index, queries):
    for q in queries:
        index.search([q], K)


def _report(benchmark, n: int, label: str) -> None:
    qps = n / benchmark.stats.stats.mean
    benchmark.extra_info.update(queries=n, queries_per_second=qps)
    print(f"\n{label}: {qps:,.0f} queries/s")


@pytest.fixture(scope="module")
def bm25s_index(nq):
    from ragenv.index import make_index

    return make_index("bm25s", nq.corpus)


@pytest.fixture(scope="module")
def pyserini_index(nq):
    from ragenv.index import make_index

    try:
        index = make_index("pyserini", nq.corpus)
        index.search(["warm up"], K)
    except Exception as exc:  # noqa: BLE001 - no Java here
        pytest.skip(f"pyserini unavailable: {exc}")
    return index


@pytest.fixture(scope="module")
def dense_index(nq):
    from ragenv.index import make_index

    index = make_index("dense", nq.corpus)
    index.search(["warm up"], K)
    return index


def test_bm25s_single(benchmark, bm25s_index, queries):
    benchmark.pedantic(_one_per_call, args=(bm25s_index, queries), rounds=3)
    _report(benchmark, len(queries), "bm25s, one query per call")


def test_bm25s_batched(benchmark, bm25s_index, queries):
    benchmark.pedantic(bm25s_index.search, args=(queries, K), rounds=3)
    _report(benchmark, len(queries), "bm25s, batched")


def test_pyserini_single(benchmark, pyserini_index, queries):
    benchmark.pedantic(_one_per_call, args=(pyserini_index, queries), rounds=3)
    _report(benchmark, len(queries), "pyserini, one query per call")


def test_pyserini_batched(benchmark, pyserini_index, queries):
    benchmark.pedantic(pyserini_index.search, args=(queries, K), rounds=3)
    _report(benchmark, len(queries), "pyserini, batched (2 threads)")


def test_rank_bm25_single(benchmark, nq, queries):
    from ragenv.bench import RankBM25Index

    index = RankBM25Index(nq.corpus)
    benchmark.pedantic(_one_per_call, args=(index, queries[:20]), rounds=1)
    _report(benchmark, 20, "rank_bm25, one query per call")


def test_dense_single(benchmark, dense_index, queries):
    benchmark.pedantic(_one_per_call, args=(dense_index, queries), rounds=3)
    _report(benchmark, len(queries), "dense, one query per call")


def test_dense_batched(benchmark, dense_index, queries):
    benchmark.pedantic(dense_index.search, args=(queries, K), rounds=3)
    _report(benchmark, len(queries), "dense, batched")
