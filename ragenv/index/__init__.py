"""First-stage indexes over a corpus: BM25 (bm25s, pyserini/Lucene) and dense (exact, or FAISS flat/IVF-PQ/HNSW).

Every index answers ``search(queries, k) -> (rows, scores)``: ``rows`` are corpus row
numbers (int64, shape [n, k], -1 where fewer than k passages match) and ``scores``
float32 of the same shape, best first. Indexes are built once per (corpus
fingerprint, configuration) and cached under ``<cache>/indexes``; a changed corpus
has another fingerprint and therefore gets its own, freshly built index.
"""
from __future__ import annotations

from ragenv.index.base import Index, build_once, index_path
from ragenv.index.registry import INDEX_KINDS, check_index_name, make_index

__all__ = ["Index", "INDEX_KINDS", "build_once", "check_index_name", "index_path", "make_index"]
