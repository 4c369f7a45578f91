"""Dense retrieval: exact inner-product search over frozen encoder embeddings.

The passage embedding matrix is computed once per (corpus, encoder) and cached as
``embeddings.npy``; the retrieval environment reads its candidate features from the
same matrix, so there is one home for passage embeddings.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ragenv.data import Corpus
from ragenv.encoder import Encoder, EncoderConfig
from ragenv.index.base import Index, build_once, index_path, top_k_by_score

FORMAT = 2  # bump when the stored embeddings change meaning (2: unit length in float32)


class DenseIndex(Index):
    """Exact top-k by inner product. ``query_encoder`` gives DPR-style pairs (question / context encoders)."""

    def __init__(
        self,
        corpus: Corpus,
        encoder: str | EncoderConfig | Encoder = EncoderConfig(),
        query_encoder: str | EncoderConfig | Encoder | None = None,
    ):
        self.corpus = corpus
        self.encoder = encoder if isinstance(encoder, Encoder) else Encoder(encoder)
        if query_encoder is None:
            self.query_encoder = self.encoder
        else:
            self.query_encoder = query_encoder if isinstance(query_encoder, Encoder) else Encoder(query_encoder)
        self.path = build_once(self.cache_path(corpus, self.encoder), corpus, self._build)
        self.embeddings = np.load(self.path / "embeddings.npy", mmap_mode="r")

    @staticmethod
    def cache_path(corpus: Corpus, encoder: Encoder) -> Path:
        """Where the index of ``corpus`` under ``encoder`` lives (a manifest.json there means built)."""
        config = {"encoder": encoder.config.name, "weights": encoder.fingerprint, "format": FORMAT}
        return index_path("dense", config, corpus)

    def _build(self, folder: Path) -> None:
        vectors = self.encoder.encode(self.corpus.contents, progress=True)
        np.save(folder / "embeddings.npy", vectors)

    def passage_embeddings(self, rows: np.ndarray) -> np.ndarray:
        """Embeddings of corpus rows (-1 rows give zero vectors)."""
        rows = np.asarray(rows)
        out = np.asarray(self.embeddings[np.clip(rows, 0, None)], dtype=np.float32)
        out[rows < 0] = 0.0
        return out

    def search_vectors(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by inner product for already-encoded queries."""
        scores = np.asarray(queries, dtype=np.float32) @ np.asarray(self.embeddings).T
        return top_k_by_score(scores, k)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.search_vectors(self.query_encoder.encode(list(queries)), k)
