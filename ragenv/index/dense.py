"""Dense retrieval and the environments' encoder features.

:class:`DenseIndex`: top-k by inner product over the passage embedding matrix, computed once per
(corpus, encoder) and cached as ``embeddings.npy``; searched exactly with numpy, or through a FAISS
index built from it (``faiss=``, :mod:`ragenv.index.faiss_index`) for corpora at scale.

The embedding pass (:class:`EmbeddingPass`) streams: it reads passages by row (never the whole
corpus into memory), encodes them in shards of :data:`SHARD_ROWS` passages, each written atomically
as its own ``.npy`` file in ``<index folder>.partial/``, so a killed build resumes at the first missing
shard; ``ray=True`` computes the shards as Ray tasks (:func:`ragenv.distributed.ray_embed`). The
assembled ``embeddings.npy`` is the one-pass ``encoder.encode(corpus.contents)`` bit for bit: shards
are cut from the order in which that call batches passages (:func:`encoding_order`), and every encoder
call is one of its batches.

:class:`LiveEmbeddings`: the same encoder's passage embeddings computed when a passage is
first shown (memoised per row), for environments whose first stage is not dense: making the
environment embeds nothing, so the first ``gym.make`` no longer waits for the whole corpus
(16,436 passages: minutes on a CPU) and a corpus of millions of passages needs no matrix in
memory. Both give the environments' features through one interface: ``encoder`` (its
``dim``), ``query_encoder`` and ``passage_embeddings(rows)``.
"""
from __future__ import annotations

import json
import logging
import numbers
import shutil
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from ragenv.atomic import atomic_path, atomic_write_json
from ragenv.data import Corpus
from ragenv.encoder import Encoder, EncoderConfig
from ragenv.errors import ConfigError
from ragenv.index.base import Index, build_once, index_path, top_k_by_score
from ragenv.index.faiss_index import FaissConfig, FaissSearcher, build_faiss

FORMAT = 2  # bump when the stored embeddings change meaning (2: unit length in float32)
SHARD_ROWS = 16_384  # passages per shard: 256 batches of 64, 24 MiB of float32 at 384 dimensions
log = logging.getLogger(__name__)


def encoding_order(corpus: Corpus, encoder: Encoder, progress: bool = False) -> np.ndarray:
    """Corpus rows in the order in which the one-pass ``encoder.encode(corpus.contents)`` batches them.

    sentence-transformers sorts its input by descending character length (``np.argsort`` of
    ``-len(text)``, an int64 array) and cuts batches from that order. A passage's embedding depends
    on the batch it shares (up to 1.4e-7 per component, measured: padding length and kernel
    shapes change), so the shards follow this order to give the one-pass bytes. Other encoders batch
    in row order. Reads every passage once, by row (a store-backed corpus is never materialised).
    """
    count = len(corpus)
    if not encoder.is_sentence_transformer:
        return np.arange(count, dtype=np.int64)
    from ragenv.progress import progress_bar

    lengths = np.empty(count, dtype=np.int64)
    with progress_bar(disable=not progress) as bar:
        task = bar.add_task("dense index: passage lengths", total=count)
        for start in range(0, count, 65_536):
            stop = min(count, start + 65_536)
            lengths[start:stop] = [-len(corpus[row].contents) for row in range(start, stop)]
            bar.advance(task, stop - start)
    order = np.argsort(lengths)
    model = encoder.model
    if getattr(model, "_can_flatten_inputs", lambda: False)():  # padding-free attention: long and short interleaved
        order = model._interleave_sorted_indices(order)
    return order.astype(np.int64)


def encode_texts(encoder: Encoder, texts: Sequence[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Embeddings of ``texts``, one ``encoder.encode`` call per ``batch_size`` texts: each call is one batch."""
    size = encoder.config.batch_size
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    for start in range(0, len(texts), size):
        batch = texts[start:start + size]
        out[start:start + len(batch)] = encoder.encode(batch)
        if on_batch is not None:
            on_batch(len(batch))
    return out


@contextmanager
def truncation_summary(encoder: Encoder) -> Iterator[None]:
    """Encoder truncation warnings once for a whole pass (not once per batch), with the totals."""
    logger = logging.getLogger("ragenv.encoder")
    level, texts, cut = logger.level, encoder.stats.texts, encoder.stats.truncated
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
        cut = encoder.stats.truncated - cut
        if cut:
            log.warning("%d of %d passages are longer than the encoder's %d-token window and are embedded from "
                        "their first %d tokens (EncoderConfig.max_seq_length)", cut, encoder.stats.texts - texts,
                        encoder.config.max_seq_length, encoder.config.max_seq_length)


def check_shard_rows(shard_rows: object, batch_size: int) -> int:
    """``shard_rows`` if it is a positive multiple of the encoder's batch size (batches never straddle shards)."""
    if isinstance(shard_rows, bool) or not isinstance(shard_rows, numbers.Integral) or shard_rows < 1 \
            or shard_rows % batch_size:
        raise ConfigError(f"shard_rows must be a positive multiple of the encoder batch size {batch_size}, "
                          f"got {shard_rows!r}")
    return int(shard_rows)


class EmbeddingPass:
    """The passage embeddings of a corpus, computed in shards that survive a kill (see the module docstring).

    Shard ``s`` holds the vectors of ``order[s * shard_rows:(s + 1) * shard_rows]`` (``order``:
    :func:`encoding_order`, kept as ``order.npy``) as ``shard-{s:06d}.npy`` in ``folder``, each written
    atomically; ``plan.json`` says what the shards are of, so they are reused only for the same
    corpus, encoder and shard size (otherwise the folder starts over).
    """

    def __init__(self, corpus: Corpus, encoder: Encoder, folder: Path, shard_rows: int = SHARD_ROWS):
        self.corpus, self.encoder, self.folder = corpus, encoder, Path(folder)
        self.shard_rows = check_shard_rows(shard_rows, encoder.config.batch_size)
        self.plan = {"corpus_fingerprint": corpus.fingerprint, "passages": len(corpus), "encoder": encoder.config.name,
                     "weights": encoder.fingerprint, "batch_size": encoder.config.batch_size,
                     "shard_rows": self.shard_rows, "format": FORMAT}
        self.order = np.zeros(0, dtype=np.int64)

    def prepare(self, progress: bool = False) -> int:
        """Load (or compute and save) the order; returns how many shards are already done."""
        plan_file = self.folder / "plan.json"
        try:
            same = json.loads(plan_file.read_text()) == self.plan
            self.order = np.load(self.folder / "order.npy") if same else self.order
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            self.order = encoding_order(self.corpus, self.encoder, progress)
            with atomic_path(self.folder / "order.npy") as tmp, open(tmp, "wb") as handle:
                np.save(handle, self.order)
            atomic_write_json(plan_file, self.plan)
        return self.shards - len(self.missing())

    @property
    def shards(self) -> int:
        return -(-len(self.corpus) // self.shard_rows)

    def rows(self, shard: int) -> np.ndarray:
        """The corpus rows of one shard, in encoding order."""
        return self.order[shard * self.shard_rows:(shard + 1) * self.shard_rows]

    def shard_file(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:06d}.npy"

    def missing(self) -> list[int]:
        """Shards without a complete file (a file of the wrong shape counts as missing)."""
        todo = []
        for shard in range(self.shards):
            try:
                done = np.load(self.shard_file(shard), mmap_mode="r").shape[0] == len(self.rows(shard))
            except (OSError, ValueError):
                done = False
            if not done:
                todo.append(shard)
        return todo

    def texts(self, shard: int) -> list[str]:
        """The passages of one shard as the encoder reads them (``title\ntext``), read by row."""
        return [self.corpus[int(row)].contents for row in self.rows(shard)]

    def save(self, shard: int, vectors: np.ndarray) -> None:
        """Write one shard's vectors atomically (a killed write leaves no file, so the shard is redone)."""
        vectors = np.asarray(vectors)
        if vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != len(self.rows(shard)):
            raise ValueError(f"shard {shard}: expected float32 [{len(self.rows(shard))}, dim], got "
                             f"{vectors.dtype} {vectors.shape}")
        with atomic_path(self.shard_file(shard)) as tmp, open(tmp, "wb") as handle:
            np.save(handle, vectors)

    def compute(self, progress: bool = True) -> None:
        """Encode every missing shard in this process, in order."""
        from ragenv.progress import progress_bar

        todo = self.missing()
        if len(todo) < self.shards:
            log.warning("resuming the embedding pass in %s: %d of %d shards were already done", self.folder,
                        self.shards - len(todo), self.shards)
        with progress_bar(disable=not progress) as bar, truncation_summary(self.encoder):
            task = bar.add_task("dense index: embedding passages", total=sum(len(self.rows(s)) for s in todo))
            for shard in todo:
                self.save(shard, encode_texts(self.encoder, self.texts(shard),
                                              on_batch=lambda n: bar.advance(task, n)))

    def assemble(self, target: Path) -> None:
        """``embeddings.npy`` in row order from the shards, written through a memory map (never all in RAM)."""
        dim = np.load(self.shard_file(0), mmap_mode="r").shape[1] if self.shards else self.encoder.dim
        out = np.lib.format.open_memmap(target, mode="w+", dtype=np.float32, shape=(len(self.corpus), dim))
        for shard in range(self.shards):
            out[self.rows(shard)] = np.load(self.shard_file(shard), mmap_mode="r")
        out.flush()
        del out


class DenseIndex(Index):
    """Top-k by inner product: exact (numpy), or through FAISS with ``faiss=`` (see the module docstrings).

    ``query_encoder`` gives DPR-style pairs (question / context encoders). Build options (they change
    how the embeddings are computed, never what they are): ``shard_rows`` (passages per shard, a
    multiple of the encoder batch size), ``ray`` (compute the shards as Ray tasks; ``ray_address``: a
    running cluster, else a private local one; ``workers``: Ray workers, default its CPUs), ``progress``.
    """

    def __init__(
        self,
        corpus: Corpus,
        encoder: str | EncoderConfig | Encoder = EncoderConfig(),
        query_encoder: str | EncoderConfig | Encoder | None = None,
        *,
        faiss: str | FaissConfig | dict | None = None,
        shard_rows: int = SHARD_ROWS,
        ray: bool = False,
        ray_address: str | None = None,
        workers: int | None = None,
        progress: bool = True,
    ):
        self.faiss_config = None if faiss is None else FaissConfig.of(faiss)
        if not isinstance(ray, bool):
            raise ConfigError(f"ray must be True or False, got {ray!r}")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral)
                                    or workers < 1):
            raise ConfigError(f"workers must be an integer >= 1 or None, got {workers!r}")
        self.corpus = corpus
        self.encoder = encoder if isinstance(encoder, Encoder) else Encoder(encoder)
        check_shard_rows(shard_rows, self.encoder.config.batch_size)
        if query_encoder is None:
            self.query_encoder = self.encoder
        else:
            self.query_encoder = query_encoder if isinstance(query_encoder, Encoder) else Encoder(query_encoder)
        self.shard_rows, self.ray, self.ray_address, self.workers = shard_rows, ray, ray_address, workers
        path = self.cache_path(corpus, self.encoder)
        self.path = build_once(path, corpus, lambda folder: self._build(folder, progress))
        shutil.rmtree(self.partial_path(path), ignore_errors=True)  # its shards are in embeddings.npy now
        self.embeddings = np.load(self.path / "embeddings.npy", mmap_mode="r")
        self.faiss: FaissSearcher | None = None
        if self.faiss_config is not None:
            self.faiss = self._open_faiss(self.faiss_config, progress)

    @staticmethod
    def cache_path(corpus: Corpus, encoder: Encoder) -> Path:
        """Where the index of ``corpus`` under ``encoder`` lives (a manifest.json there means built)."""
        config = {"encoder": encoder.config.name, "weights": encoder.fingerprint, "format": FORMAT}
        return index_path("dense", config, corpus)

    @staticmethod
    def partial_path(path: Path) -> Path:
        """Where the shards of an unfinished build of ``path`` wait (removed once the index is complete)."""
        return path.with_name(path.name + ".partial")

    def _build(self, folder: Path, progress: bool) -> None:
        run = EmbeddingPass(self.corpus, self.encoder, self.partial_path(self.cache_path(self.corpus, self.encoder)),
                            self.shard_rows)
        run.prepare(progress)
        if self.ray:
            from ragenv.distributed import ray_embed

            ray_embed(run, address=self.ray_address, workers=self.workers, progress=progress)
        else:
            run.compute(progress)
        run.assemble(folder / "embeddings.npy")

    def _open_faiss(self, config: FaissConfig, progress: bool) -> FaissSearcher:
        dense = {"encoder": self.encoder.config.name, "weights": self.encoder.fingerprint, "format": FORMAT}
        options = config.build_options(len(self.embeddings))
        path = index_path(f"dense-{options['kind']}", {"dense": dense, **options}, self.corpus)
        folder = build_once(path, self.corpus, lambda tmp: None if build_faiss(self.embeddings, config, tmp, progress)
                            else None)
        return FaissSearcher(folder, config, self.embeddings)

    def passage_embeddings(self, rows: np.ndarray) -> np.ndarray:
        """Embeddings of corpus rows (-1 rows give zero vectors)."""
        rows = np.asarray(rows)
        out = np.asarray(self.embeddings[np.clip(rows, 0, None)], dtype=np.float32)
        out[rows < 0] = 0.0
        return out

    def search_vectors(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by inner product for already-encoded queries (FAISS when the index has one)."""
        if self.faiss is not None:
            return self.faiss.search(queries, k)
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
