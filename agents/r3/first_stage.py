"""R3's first stages: what gives the top-``m`` candidates that the live dense head re-ranks.

Each is a class behind one interface (:class:`FirstStage`), built by name through
:data:`FIRST_STAGES`; the indexes come from :mod:`ragenv.index`:

- ``bm25s`` / ``pyserini``: a frozen BM25 index (:class:`FrozenIndexStage`);
- ``bm25s+dense``: the union of BM25's and the *starting* dense index's top ``m``, both frozen
  (:class:`UnionWithDenseStage`);
- ``bag-of-tokens``: SiDR's frozen binary token index searched with the live query vocabulary
  vector (:class:`BagOfTokensStage`);
- ``dense-reindex``, the ablation: a full dense index of the corpus re-encoded with the live
  parameters every ``reindex_every`` steps (:class:`ReindexedDenseStage`).

A frozen stage gives each question the same candidates for the whole run, so they are memoised
and the frozen LLM's feedback on them is served by the reward cache after the first epoch.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ragenv.data import Corpus, Question

if TYPE_CHECKING:
    from ragenv.agents.r3.model import R3Encoder


class FirstStage:
    """Candidate rows ``[n, m]`` (``-1`` pads) for questions; the default hooks do nothing.

    ``frozen``: the candidates never change during training (memoised, cache-served).
    """

    frozen = False

    def __init__(self, corpus: Corpus, encoder: "R3Encoder", encoder_name: str, num_candidates: int):
        self.corpus, self.encoder, self.encoder_name, self.m = corpus, encoder, encoder_name, num_candidates

    def candidates(self, questions: Sequence[Question]) -> np.ndarray:
        raise NotImplementedError

    def before_step(self, step: int, within_epoch: int) -> None:
        """Called before each training step (``step`` counts from 0 over the run)."""

    def parameters_changed(self) -> None:
        """Called after each optimizer step."""

    def save(self, folder: Path) -> dict:
        """Write what the trained agent needs beside its weights; returns training-record updates."""
        return {}

    def load(self, folder: Path) -> None:
        """Read what :meth:`save` wrote."""

    def record(self) -> dict:
        """Figures for the training record."""
        return {"reindexes": 0, "reindex_seconds": 0.0}


class _MemoisedStage(FirstStage):
    """A frozen stage: each question's candidates are searched once, then read from a memo."""

    frozen = True

    def __init__(self, *args):
        super().__init__(*args)
        self._memo: dict[str, np.ndarray] = {}

    def candidates(self, questions: Sequence[Question]) -> np.ndarray:
        todo = [q for q in questions if q.id not in self._memo]
        if todo:
            self._memo.update(zip((q.id for q in todo), self._search([q.question for q in todo])))
        return np.stack([self._memo[q.id] for q in questions])

    def _search(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class FrozenIndexStage(_MemoisedStage):
    """A frozen BM25 index (``bm25s`` or ``pyserini``) built once like the environment's own."""

    def __init__(self, kind: str, *args):
        super().__init__(*args)
        from ragenv.index import make_index

        self.index = make_index(kind, self.corpus)

    def _search(self, texts: list[str]) -> np.ndarray:
        return self.index.search(texts, self.m)[0]


class UnionWithDenseStage(_MemoisedStage):
    """BM25's top ``m`` and the starting dense index's top ``m``: rows ``[n, 2m]``, dense first, then BM25's new."""

    def __init__(self, *args):
        super().__init__(*args)
        from ragenv.index import make_index

        self.bm25 = make_index("bm25s", self.corpus)
        self.dense = make_index("dense", self.corpus, encoder=self.encoder_name)

    def _search(self, texts: list[str]) -> np.ndarray:
        rows = np.full((len(texts), 2 * self.m), -1, dtype=np.int64)
        for n, (d, b) in enumerate(zip(self.dense.search(texts, self.m)[0], self.bm25.search(texts, self.m)[0])):
            union = list(dict.fromkeys(int(r) for r in (*d, *b) if r >= 0))
            rows[n, : len(union)] = union
        return rows


class BagOfTokensStage(FirstStage):
    """SiDR: the frozen binary passage x wordpiece index, searched with the live query vocabulary vector."""

    def __init__(self, *args):
        super().__init__(*args)
        from ragenv.agents.r3.model import BagOfTokensIndex

        self.index = BagOfTokensIndex(self.corpus, self.encoder, self.encoder_name)

    def candidates(self, questions: Sequence[Question]) -> np.ndarray:
        weights = self.encoder.encode_numpy([q.question for q in questions], "query", ("vocab",))["vocab"]
        return self.index.search_vectors(weights, self.m)[0]


class ReindexedDenseStage(FirstStage):
    """The ablation: a full dense index re-encoded with the live parameters (stale between re-encodes).

    ``reindex_every`` steps between re-encodes (0: at each epoch's start); the trained agent
    keeps its final index in ``passages.npy``.
    """

    FILE = "passages.npy"
    CORPUS_FILE = "passages.json"  # the corpus passages.npy encodes (name, fingerprint)

    def __init__(self, reindex_every: int, *args):
        super().__init__(*args)
        self.reindex_every = reindex_every
        self.passage_matrix: np.ndarray | None = None  # None until first needed: then the starting index
        self.is_current = False  # passage_matrix was encoded with the present parameters
        self.reindexes, self.reindex_seconds = 0, 0.0

    def candidates(self, questions: Sequence[Question]) -> np.ndarray:
        from ragenv.index.base import top_k_by_score

        queries = self.encoder.encode_numpy([q.question for q in questions], "query", ("dense",))["dense"]
        if self.passage_matrix is None:  # before the first re-encode: the starting encoder's index, built once
            from ragenv.index import make_index

            self.passage_matrix = np.asarray(make_index("dense", self.corpus, encoder=self.encoder_name).embeddings)
        matrix = self.passage_matrix
        return top_k_by_score(queries @ matrix.T, self.m)[0]

    def reindex(self) -> None:
        """Re-encode the whole corpus with the current parameters (the encoder in eval mode)."""
        started = time.perf_counter()
        training = self.encoder.module.training
        self.encoder.module.eval()
        encoded = self.encoder.encode_numpy(self.corpus.contents, "passage", ("dense",), batch_size=64)
        self.passage_matrix = encoded["dense"]
        self.encoder.module.train(training)
        self.reindex_seconds += time.perf_counter() - started
        self.reindexes += 1
        self.is_current = True

    def before_step(self, step: int, within_epoch: int) -> None:
        due = step % self.reindex_every == 0 if self.reindex_every else within_epoch == 0
        if step > 0 and due:
            self.reindex()

    def parameters_changed(self) -> None:
        self.is_current = False

    def save(self, folder: Path) -> dict:
        if not self.is_current:  # none yet, or training moved the weights since: the final index is part of the cost
            self.reindex()
        np.save(folder / self.FILE, self.passage_matrix)
        (folder / self.CORPUS_FILE).write_text(json.dumps({"corpus": self.corpus.name,
                                                            "fingerprint": self.corpus.fingerprint}) + "\n")
        return self.record()

    def load(self, folder: Path) -> None:
        """The saved index when it was encoded from this corpus; over another corpus (an agent trained on one
        corpus, evaluated over a store), the loaded weights re-encode this corpus instead."""
        saved = folder / self.CORPUS_FILE
        fingerprint = json.loads(saved.read_text()).get("fingerprint") if saved.exists() else None
        if fingerprint == self.corpus.fingerprint:
            self.passage_matrix = np.load(folder / self.FILE)
            self.is_current = True
        else:
            self.reindex()

    def record(self) -> dict:
        return {"reindexes": self.reindexes, "reindex_seconds": self.reindex_seconds}


# name -> builder(corpus, encoder, encoder_name, num_candidates, reindex_every)
FIRST_STAGES: dict[str, Callable[..., FirstStage]] = {
    "bm25s": lambda *args, reindex_every: FrozenIndexStage("bm25s", *args),
    "pyserini": lambda *args, reindex_every: FrozenIndexStage("pyserini", *args),
    "bm25s+dense": lambda *args, reindex_every: UnionWithDenseStage(*args),
    "bag-of-tokens": lambda *args, reindex_every: BagOfTokensStage(*args),
    "dense-reindex": lambda *args, reindex_every: ReindexedDenseStage(reindex_every, *args),
}


def make_first_stage(name: str, corpus: Corpus, encoder: "R3Encoder", encoder_name: str, num_candidates: int,
                     reindex_every: int = 0) -> FirstStage:
    """The first stage called ``name`` (one of :data:`FIRST_STAGES`; R3Config checks the name)."""
    return FIRST_STAGES[name](corpus, encoder, encoder_name, num_candidates, reindex_every=reindex_every)
