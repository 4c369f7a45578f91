"""Approximate and exact top-k over a dense index's embeddings with FAISS (faiss-cpu), for corpora at scale.

:class:`DenseIndex` searches its ``embeddings.npy`` exactly with numpy, which reads the whole matrix per
query batch: 32 GiB of float32 at 21M passages. With ``faiss=`` (or the index names ``dense:flat``,
``dense:ivfpq``, ``dense:hnsw``, ``dense:faiss``) it searches a FAISS index built from that file instead:

- ``flat``: ``IndexFlatIP``, exact (the same top-k rows as numpy, ties aside): for small corpora;
- ``ivfpq``: ``IndexIVFPQ``, ``nlist`` k-means cells (trained on a sample) and product-quantised codes
  of ``pq_m`` bytes per passage (48: 1 GiB at 21M passages), searched in ``nprobe`` cells; the
  ``rerank * k`` best candidates are then re-scored exactly from the memory-mapped embeddings;
- ``hnsw``: ``IndexHNSWFlat``, a graph over the full vectors (fast and accurate, but it stores every
  float32 vector: 32 GiB at 21M passages, so it fits a 24 GiB machine only memory-mapped);
- ``auto``: ``flat`` up to :data:`AUTO_FLAT_MAX` passages, ``ivfpq`` above.

Every build streams the embeddings in chunks of ``add_chunk`` rows (IVF-PQ trains on ``train_size``
sampled rows), so memory does not grow with the corpus. The index is written with ``faiss.write_index``
into its own build-once cache folder (its name holds the dense index's configuration and the build
options; search options such as ``nprobe`` are not part of it) and opened memory-mapped.
"""
from __future__ import annotations

import json
import math
import numbers
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragenv.errors import ConfigError
from ragenv.index.base import top_k_by_score

FAISS_KINDS = {
    "flat": "FAISS IndexFlatIP: exact inner product (the same top-k as numpy)",
    "ivfpq": "FAISS IndexIVFPQ: approximate, ~pq_m bytes per passage, exact re-scoring of rerank*k candidates",
    "hnsw": "FAISS IndexHNSWFlat: approximate graph search over the full vectors",
    "auto": "flat up to 1,000,000 passages, ivfpq above",
}
AUTO_FLAT_MAX = 1_000_000  # flat search reads N * 1.5 KiB per query batch: ~40 ms per query at 1M on one core
INDEX_FILE = "index.faiss"


@dataclass(frozen=True)
class FaissConfig:
    """A FAISS index over a dense index's embeddings: its kind, build options and search options.

    Build options (part of the cache folder's name): ``nlist`` (IVF cells; None: a power of two near
    4 * sqrt(N), at most N / 39 so that every cell has k-means points), ``pq_m`` (PQ bytes per
    passage; must divide the dimension), ``pq_nbits`` (bits per PQ code, 8 standard; 256 codes need
    256 training points), ``train_size`` (rows sampled to train IVF-PQ; None: 39 per cell, as FAISS's k-means
    asks, and at least 65,536), ``hnsw_m`` (graph degree),
    ``ef_construction``, ``seed``. Search options: ``nprobe`` (IVF cells visited), ``ef_search``
    (HNSW candidate list, at least k), ``rerank`` (IVF-PQ: re-score ``rerank * k`` candidates
    exactly; 0 keeps the PQ scores). ``add_chunk``: rows read per step while building.
    """

    kind: str = "auto"
    nlist: int | None = None
    pq_m: int = 48
    pq_nbits: int = 8
    train_size: int | None = None
    hnsw_m: int = 32
    ef_construction: int = 128
    seed: int = 0
    nprobe: int = 32
    ef_search: int = 128
    rerank: int = 4
    add_chunk: int = 65_536

    def __post_init__(self):
        if not isinstance(self.kind, str) or self.kind not in FAISS_KINDS:
            raise ConfigError(f"faiss must be one of {', '.join(map(repr, FAISS_KINDS))}, got {self.kind!r}")
        minimum = {"pq_m": 1, "pq_nbits": 1, "hnsw_m": 2, "ef_construction": 1, "seed": 0,
                   "nprobe": 1, "ef_search": 1, "rerank": 0, "add_chunk": 1}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ConfigError(f"faiss option {name} must be an integer >= {low}, got {value!r}")
        for name in ("nlist", "train_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
                raise ConfigError(f"faiss option {name} must be an integer >= 1 or None, got {value!r}")
        if self.pq_nbits > 16:
            raise ConfigError(f"faiss option pq_nbits must be at most 16, got {self.pq_nbits!r}")

    @classmethod
    def of(cls, value: str | FaissConfig | dict) -> FaissConfig:
        """A config from a kind name, a dict of fields or a config (ConfigError naming what is wrong)."""
        if isinstance(value, FaissConfig):
            return value
        if isinstance(value, str):
            return cls(kind=value)
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(cls.__dataclass_fields__))
            if unknown:
                raise ConfigError(f"unknown faiss option(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(cls.__dataclass_fields__)}")
            return cls(**value)
        raise ConfigError(f"faiss must be a kind ({', '.join(FAISS_KINDS)}), a dict of options or a FaissConfig, "
                          f"got {value!r}")

    def resolved(self, count: int) -> str:
        """The kind built for a corpus of ``count`` passages (``auto`` decides by size)."""
        if self.kind == "auto":
            return "flat" if count <= AUTO_FLAT_MAX else "ivfpq"
        return self.kind

    def build_options(self, count: int) -> dict:
        """What the built index depends on (its cache key): the resolved kind and that kind's build options."""
        kind = self.resolved(count)
        if kind == "ivfpq":
            return {"kind": kind, "nlist": self.cells(count), "pq_m": self.pq_m, "pq_nbits": self.pq_nbits,
                    "train_size": self.training_rows(count), "seed": self.seed}
        if kind == "hnsw":
            return {"kind": kind, "hnsw_m": self.hnsw_m, "ef_construction": self.ef_construction}
        return {"kind": kind}

    def training_rows(self, count: int) -> int:
        """Rows sampled to train IVF-PQ: ``train_size``, else 39 per cell and at least 65,536; at most N."""
        wanted = self.train_size if self.train_size is not None else max(2**16, 39 * self.cells(count))
        return int(min(count, wanted))

    def cells(self, count: int) -> int:
        """IVF cells for ``count`` passages: ``nlist``, else a power of two near 4 sqrt(N), at most N / 39."""
        if self.nlist is not None:
            return int(self.nlist)
        target = 2 ** round(math.log2(max(4 * math.sqrt(count), 1)))
        return int(max(1, min(target, count // 39)))


def _rows_in_chunks(embeddings: np.ndarray, chunk: int):
    for start in range(0, len(embeddings), chunk):
        yield start, np.ascontiguousarray(embeddings[start:start + chunk], dtype=np.float32)


def build_faiss(embeddings: np.ndarray, config: FaissConfig, folder: Path, progress: bool = True) -> dict:
    """Build the FAISS index of ``config`` over ``embeddings`` (a memory map, read in chunks) into ``folder``.

    Returns what the build did (kind, seconds, bytes), which is also stored as ``faiss.json``.
    """
    import faiss

    from ragenv.progress import progress_bar

    count, dim = embeddings.shape
    options = config.build_options(count)
    kind = options["kind"]
    started = time.perf_counter()
    index: faiss.Index
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = config.ef_construction
        index = hnsw
    else:
        if dim % config.pq_m:
            raise ConfigError(f"faiss option pq_m={config.pq_m} must divide the embedding dimension {dim}")
        needed = 2 ** config.pq_nbits
        if count < needed:
            raise ConfigError(f"IVF-PQ with pq_nbits={config.pq_nbits} trains {needed} codes per sub-quantizer and "
                              f"needs at least that many passages; this corpus has {count}: use dense:flat, "
                              "or a smaller pq_nbits")
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, options["nlist"], config.pq_m, config.pq_nbits,
                                 faiss.METRIC_INNER_PRODUCT)
        sample = np.sort(np.random.default_rng(config.seed).choice(count, options["train_size"], replace=False))
        train = np.ascontiguousarray(embeddings[sample], dtype=np.float32)
        index.train(train)
        del train
    trained = time.perf_counter()
    with progress_bar(disable=not progress, elapsed=True) as bar:
        task = bar.add_task(f"FAISS {kind}: adding passages", total=count)
        for _, vectors in _rows_in_chunks(embeddings, config.add_chunk):
            index.add(vectors)
            bar.advance(task, len(vectors))
    faiss.write_index(index, str(folder / INDEX_FILE))
    report = {**options, "passages": count, "dim": dim, "train_seconds": trained - started,
              "seconds": time.perf_counter() - started, "bytes": (folder / INDEX_FILE).stat().st_size,
              "faiss_version": faiss.__version__}
    (folder / "faiss.json").write_text(json.dumps(report, indent=1))
    return report


class FaissSearcher:
    """A FAISS index opened memory-mapped where FAISS can (flat codes, HNSW vectors, IVF lists), and its search."""

    def __init__(self, folder: Path, config: FaissConfig, embeddings: np.ndarray):
        import faiss

        self.folder, self.config, self.embeddings = folder, config, embeddings
        self.kind = config.resolved(len(embeddings))
        flags = faiss.IO_FLAG_MMAP if self.kind == "ivfpq" else faiss.IO_FLAG_MMAP_IFC
        self.index = faiss.read_index(str(folder / INDEX_FILE), flags)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows (int64, -1 padding) and scores (float32, 0 padding) for encoded queries."""
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32)
        rerank = self.kind == "ivfpq" and self.config.rerank > 0
        wanted = k * self.config.rerank if rerank else k
        params: Any = None  # (faiss's type stubs lack SearchParametersHNSW and these keywords)
        if self.kind == "hnsw":
            params = getattr(faiss, "SearchParametersHNSW")(efSearch=max(self.config.ef_search, wanted))
        elif self.kind == "ivfpq":
            params = getattr(faiss, "SearchParametersIVF")(nprobe=self.config.nprobe)
        scores, rows = self.index.search(queries, wanted, params=params)
        rows = rows.astype(np.int64)
        if rerank:
            return self._rescore(queries, rows, k)
        return rows, np.where(rows >= 0, scores, 0.0).astype(np.float32)

    def _rescore(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products of the candidates (read from the memory-mapped embeddings), best ``k`` kept."""
        exact = np.full(candidates.shape, -np.inf, dtype=np.float32)
        for n, (query, rows) in enumerate(zip(queries, candidates)):
            found = rows >= 0
            exact[n, found] = np.asarray(self.embeddings[rows[found]], dtype=np.float32) @ query
        top, scores = top_k_by_score(exact, k)
        rows = np.take_along_axis(candidates, np.clip(top, 0, None), axis=1)
        missing = (top < 0) | ~np.isfinite(scores)
        return np.where(missing, -1, rows), np.where(missing, 0.0, scores).astype(np.float32)
