"""Dense retrieval and the environments' encoder features.

:class:`DenseIndex`: exact inner-product search over the passage embedding matrix, computed
once per (corpus, encoder) and cached as ``embeddings.npy``.

:class:`LiveEmbeddings`: the same encoder's passage embeddings computed when a passage is
first shown (memoised per row), for environments whose first stage is not dense: making the
environment embeds nothing, so the first ``gym.make`` no longer waits for the whole corpus
(16,436 passages: minutes on a CPU) and a corpus of millions of passages needs no matrix in
memory. Both give the environments' features through one interface: ``encoder`` (its
``dim``), ``query_encoder`` and ``passage_embeddings(rows)``.
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


class LiveEmbeddings:
    """Passage features from the encoder on demand, memoised per corpus row (see the module docstring).

    A passage's vector is the one :class:`DenseIndex` stores up to float32 rounding (the
    encoder sees it in another batch, padded to another length): measured difference at
    most 1e-6 per component (``tests/test_live_features.py``).
    """

    def __init__(self, corpus: Corpus, encoder: str | EncoderConfig | Encoder = EncoderConfig()):
        self.corpus = corpus
        self.encoder = encoder if isinstance(encoder, Encoder) else Encoder(encoder)
        self.query_encoder = self.encoder
        self._memo: dict[int, np.ndarray] = {}

    def passage_embeddings(self, rows: np.ndarray) -> np.ndarray:
        """Embeddings of corpus rows (-1 rows give zero vectors); rows not seen before are encoded in one batch."""
        rows = np.asarray(rows)
        todo = sorted({int(r) for r in rows.ravel() if r >= 0} - self._memo.keys())
        if todo:
            vectors = np.asarray(self.encoder.encode([self.corpus[r].contents for r in todo]), dtype=np.float32)
            self._memo.update(zip(todo, vectors))
        out = np.zeros(rows.shape + (self.encoder.dim,), dtype=np.float32)
        for index, row in np.ndenumerate(rows):
            if row >= 0:
                out[index] = self._memo[int(row)]
        return out

    @property
    def memoised(self) -> int:
        """Passages embedded so far."""
        return len(self._memo)
