"""What every index shares: the search contract and the build-once disk cache."""
from __future__ import annotations

import hashlib
import json
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from filelock import FileLock

from ragenv import settings
from ragenv.atomic import atomic_path
from ragenv.data import Corpus


class Index(ABC):
    """A searchable view of a corpus."""

    corpus: Corpus

    @abstractmethod
    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k corpus rows and scores per query: int64 [n, k] (-1 padding) and float32 [n, k]."""

    def search_one(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        rows, scores = self.search([query], k)
        return rows[0], scores[0]


def top_k_by_score(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best-first top-k columns of each row of ``scores`` [n_queries, N]: rows int64 and scores float32,
    padded with -1 / 0 when ``k`` exceeds N."""
    n = scores.shape[1]
    kk = min(k, n)
    top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    rows = np.full((len(scores), k), -1, dtype=np.int64)
    out = np.zeros((len(scores), k), dtype=np.float32)
    rows[:, :kk] = np.take_along_axis(top, order, axis=1)
    out[:, :kk] = np.take_along_axis(top_scores, order, axis=1)
    return rows, out


def index_path(kind: str, config: dict, corpus: Corpus) -> Path:
    """Cache folder for one (kind, configuration, corpus) triple."""
    blob = json.dumps({"kind": kind, "config": config, "corpus": corpus.fingerprint}, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return settings.cache_subdir("indexes") / f"{kind}-{corpus.name.replace('/', '_')}-{digest}"


def build_once(path: Path, corpus: Corpus, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmpdir)`` unless ``path`` already holds a complete index of this corpus.

    The build writes into a temporary folder that is renamed into place only when it
    has finished, under a file lock, so a killed build or a concurrent process never
    leaves a half-written index behind.
    """
    manifest = path / "manifest.json"

    def complete() -> bool:
        try:
            return json.loads(manifest.read_text())["corpus_fingerprint"] == corpus.fingerprint
        except (OSError, ValueError, KeyError):
            return False

    if complete():
        return path
    with FileLock(str(path) + ".lock"):
        if complete():
            return path
        if path.exists():
            shutil.rmtree(path)
        with atomic_path(path, folder=True) as tmp:
            build(tmp)
            (tmp / "manifest.json").write_text(
                json.dumps({"corpus": corpus.name, "corpus_fingerprint": corpus.fingerprint, "passages": len(corpus)})
            )
    return path
