"""Index construction by name, so CLI options, environments and agents share one switch."""
from __future__ import annotations

from ragenv.data import Corpus
from ragenv.errors import ConfigError
from ragenv.index.base import Index

INDEX_KINDS = {
    "bm25s": "BM25 in-process (bm25s, Lucene idf), k1=0.9 b=0.4",
    "pyserini": "BM25 with Lucene through pyserini (the reference), k1=0.9 b=0.4",
    "dense": "exact inner-product search over frozen encoder embeddings (all-MiniLM-L6-v2 by default)",
}


def check_index_name(name: object) -> str:
    """``name`` if it names an index :func:`make_index` can open, else ConfigError listing the kinds (nothing loads)."""
    if not isinstance(name, str) or name not in INDEX_KINDS:
        raise ConfigError(f"first_stage must be one of {', '.join(map(repr, INDEX_KINDS))}, got {name!r}")
    return name


def make_index(kind: str, corpus: Corpus, **options) -> Index:
    """Build (or load from the cache) an index of ``corpus``; options go to the backend's config."""
    if kind == "bm25s":
        from ragenv.index.bm25 import BM25Config, Bm25sIndex

        return Bm25sIndex(corpus, BM25Config(**options))
    if kind == "pyserini":
        from ragenv.index.bm25 import BM25Config, PyseriniIndex

        return PyseriniIndex(corpus, BM25Config(**options))
    if kind == "dense":
        from ragenv.index.dense import DenseIndex

        return DenseIndex(corpus, **options)
    raise ConfigError(f"unknown index {kind!r}: use one of {', '.join(INDEX_KINDS)}")
