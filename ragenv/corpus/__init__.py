"""Corpora on disk, for corpora too big for Python objects (up to full Wikipedia, 21M passages).

- :mod:`ragenv.corpus.store`: :class:`CorpusStore`, the memory-mapped store (layout in its docstring);
- :mod:`ragenv.corpus.ingest`: ``ingest``, streaming DPR TSV / JSONL / FlashRAG files into a store,
  resumable after a kill, atomic, strict about bad input;
- :mod:`ragenv.corpus.synth`: ``synthesize``, synthetic distractors from real sentences (for cost,
  not retrieval difficulty).

``ragenv.data.Corpus.from_store`` puts a store behind the ordinary :class:`ragenv.data.Corpus` interface.
The functions are imported from their modules (``from ragenv.corpus.ingest import ingest``): re-exported
here, ``ingest`` would hide the module of the same name.
"""
from __future__ import annotations

from ragenv.corpus.store import CorpusStore, corpora_dir, store_path

__all__ = ["CorpusStore", "corpora_dir", "store_path"]
