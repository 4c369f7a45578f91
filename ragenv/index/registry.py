"""Index construction by name, so CLI options, environments and agents share one switch.

A name is one of :data:`INDEX_KINDS`, built by ragenv over the corpus, or a Lucene index that
ragenv did not build, whose docids are the corpus's passage ids:

- ``pyserini:prebuilt:NAME``: pyserini's prebuilt index NAME (``LuceneSearcher.from_prebuilt_index``),
  for example ``pyserini:prebuilt:wikipedia-dpr-100w`` over a store of DPR's ``psgs_w100.tsv``;
  downloaded into pyserini's cache on first use;
- ``pyserini:path:FOLDER``: a Lucene index folder in the same layout (a prebuilt index unpacked
  where there is no network, or one made with pyserini's indexer).
"""
from __future__ import annotations

import re
from pathlib import Path

from ragenv.data import Corpus
from ragenv.errors import ConfigError
from ragenv.index.base import Index

INDEX_KINDS = {
    "bm25s": "BM25 in-process (bm25s, Lucene idf), k1=0.9 b=0.4",
    "pyserini": "BM25 with Lucene through pyserini (the reference), k1=0.9 b=0.4",
    "dense": "exact inner-product search over frozen encoder embeddings (all-MiniLM-L6-v2 by default)",
    "dense:flat": "FAISS IndexFlatIP over the dense embeddings: exact, the same top-k as dense",
    "dense:ivfpq": "FAISS IVF-PQ over the dense embeddings: approximate, 48 bytes per passage, exact re-scoring",
    "dense:hnsw": "FAISS HNSW over the dense embeddings: approximate graph search over the full vectors",
    "dense:faiss": "FAISS over the dense embeddings: dense:flat up to 10^6 passages, dense:ivfpq above",
}
PREBUILT, FOLDER = "pyserini:prebuilt:", "pyserini:path:"
_PREBUILT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # how pyserini spells its index names


def check_index_name(name: object) -> str:
    """``name`` if it names an index :func:`make_index` can open, else a one-line ConfigError (nothing loads).

    A prebuilt name is only checked for its spelling here (pyserini's list of names needs Java);
    a folder must hold a Lucene index (a ``segments_N`` file).
    """
    if isinstance(name, str) and name.startswith(PREBUILT):
        if not _PREBUILT_NAME.fullmatch(name[len(PREBUILT):]):
            raise ConfigError(f"first_stage {name!r} names no prebuilt index: write {PREBUILT}NAME, "
                              f"for example {PREBUILT}wikipedia-dpr-100w")
        return name
    if isinstance(name, str) and name.startswith(FOLDER):
        folder = Path(name[len(FOLDER):]).expanduser()
        if not name[len(FOLDER):] or not folder.is_dir() or not any(folder.glob("segments_*")):
            raise ConfigError(f"first_stage {name!r}: no Lucene index in that folder (it needs a segments_N file); "
                              f"write {FOLDER}FOLDER with an index folder, or {PREBUILT}NAME")
        return name
    if not isinstance(name, str) or name not in INDEX_KINDS:
        raise ConfigError(f"first_stage must be one of {', '.join(map(repr, INDEX_KINDS))}, "
                          f"'{PREBUILT}NAME' or '{FOLDER}FOLDER', got {name!r}")
    return name


def make_index(kind: str, corpus: Corpus, **options) -> Index:
    """Build (or load from the cache) an index of ``corpus``; options go to the backend's config."""
    kind = check_index_name(kind)
    if kind == "bm25s":
        from ragenv.index.bm25 import BM25Config, Bm25sIndex

        return Bm25sIndex(corpus, BM25Config(**options))
    if kind == "pyserini":
        from ragenv.index.bm25 import BM25Config, PyseriniIndex

        return PyseriniIndex(corpus, BM25Config(**options))
    if kind.startswith((PREBUILT, FOLDER)):
        from ragenv.index.bm25 import BM25Config, PyseriniPrebuiltIndex

        config = BM25Config(**options)
        if kind.startswith(PREBUILT):
            return PyseriniPrebuiltIndex(corpus, prebuilt=kind[len(PREBUILT):], config=config)
        return PyseriniPrebuiltIndex(corpus, folder=Path(kind[len(FOLDER):]).expanduser(), config=config)
    from ragenv.index.dense import DenseIndex

    if kind.startswith("dense:"):  # FAISS over the dense embeddings (ragenv/index/faiss_index.py)
        faiss = kind.partition(":")[2]
        return DenseIndex(corpus, faiss="auto" if faiss == "faiss" else faiss, **options)
    return DenseIndex(corpus, **options)
