"""The R3 retriever network and its frozen bag-of-tokens index.

``R3Encoder`` is a BERT-architecture encoder (all-MiniLM-L6-v2 by default) with two heads:

- a **dense head**: mean-pooled last hidden states, L2-normalised (at initialisation exactly
  the frozen dense baseline's embedding);
- a **vocabulary head** in the VDR/SiDR style: every last hidden state is projected onto the
  tied word-embedding matrix (plus a learned bias), passed through a positive activation
  (``elu1p`` = ELU + 1, or ``relu_log1p`` = log(1 + ReLU)) and max-pooled over the tokens,
  giving one weight per wordpiece: a 30,522-dimensional vector.

``BagOfTokensIndex`` is SiDR's non-parametric side: a binary passage x wordpiece matrix
built once from the tokenizer alone (no parameters, so it never goes stale), kept on disk as
memory-mapped posting lists, and searched with the live query vocabulary vector:
``score(q, d) = sum of v_q over d's wordpieces``.
"""
from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from ragenv.data import Corpus
from ragenv.errors import ConfigError
from ragenv.index.base import Index, build_once, index_path, top_k_by_score

ACTIVATIONS = ("elu1p", "relu_log1p")


def _torch():
    import torch

    return torch


class R3Encoder:
    """The trainable encoder: ``encode(texts, kind)`` gives dense and vocabulary vectors (torch tensors).

    Wraps a ``torch.nn.Module`` (``self.module``) so that the optimizer and checkpoints see one
    set of parameters: the BERT weights and the vocabulary bias.
    """

    def __init__(self, path: str, activation: str = "elu1p", max_query_tokens: int = 64,
                 max_passage_tokens: int = 160, device: str = "cpu", autocast: bool = False):
        import torch
        import transformers
        from transformers.utils import logging as hf_logging

        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown vocabulary activation {activation!r}: use one of {', '.join(ACTIVATIONS)}")
        hf_logging.set_verbosity_error()
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
            bert = transformers.AutoModel.from_pretrained(path, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the R3 encoder from {path!r}: {str(exc).splitlines()[0]}") from None
        self.module = torch.nn.ModuleDict({"bert": bert}).to(device)
        vocab_bias = torch.nn.Parameter(torch.zeros(bert.config.vocab_size, device=device))
        self.module.register_parameter("vocab_bias", vocab_bias)
        self.activation, self.device = activation, device
        self.max_tokens = {"query": max_query_tokens, "passage": max_passage_tokens}
        self.vocab_size = int(bert.config.vocab_size)
        self.dim = int(bert.config.hidden_size)
        self.special_ids = sorted(set(self.tokenizer.all_special_ids))
        # float32 by default, so a checkpoint ranks the same on every machine; bf16 autocast (about 2x on
        # CPUs with native bf16; weights and optimizer state stay float32) is an explicit opt-in.
        self.autocast = bool(autocast)

    # ------------------------------------------------------------------ sparse side (no parameters)
    def wordpieces(self, texts: Sequence[str], kind: str = "passage") -> tuple[np.ndarray, np.ndarray]:
        """Each text's distinct wordpiece ids, ascending, special tokens dropped, as CSR pieces:
        ``indptr`` int64 [n + 1] and ``ids`` int32 (text i's ids are ``ids[indptr[i]:indptr[i + 1]]``)."""
        ids = self.tokenizer(list(texts), add_special_tokens=False, truncation=True,
                             max_length=self.max_tokens[kind])["input_ids"]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
        if flat.size and (flat.min() < 0 or flat.max() >= self.vocab_size):
            raise ConfigError(f"the tokenizer gave wordpiece ids outside the model's vocabulary of {self.vocab_size}: "
                              "use a tokenizer that matches the encoder")
        # One key per (text, wordpiece): sorted, they order by text, then id; repeats are dropped.
        keys = np.repeat(np.arange(len(ids), dtype=np.int64), lengths) * self.vocab_size + flat
        keys = np.sort(keys[~np.isin(flat, self.special_ids)])
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        keys = keys[first]  # np.unique, without its slower hash path
        text_of, unique = np.divmod(keys, self.vocab_size)
        indptr = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(text_of, minlength=len(ids)), out=indptr[1:])
        return indptr, unique.astype(np.int32)

    def bag_of_tokens(self, texts: Sequence[str], kind: str = "passage"):
        """Binary text x wordpiece matrix (scipy CSR, float32): which wordpieces each text contains."""
        import scipy.sparse as sp

        indptr, ids = self.wordpieces(texts, kind)
        data = np.ones(len(ids), dtype=np.float32)
        return sp.csr_matrix((data, ids, indptr), shape=(len(indptr) - 1, self.vocab_size))

    # ------------------------------------------------------------------ parametric side
    def encode(self, texts: Sequence[str], kind: str, heads: Sequence[str] = ("dense", "vocab")) -> dict:
        """``{"dense": [n, dim] unit vectors, "vocab": [n, vocab] non-negative}`` for the asked heads.

        Gradients flow unless the caller is in ``torch.no_grad()``/``inference_mode()``.
        """
        torch = _torch()
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens[kind],
                               return_tensors="pt").to(self.device)
        with torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.autocast):
            hidden = self.module["bert"](**batch).last_hidden_state.float()  # [n, T, dim]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        out = {}
        if "dense" in heads:
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out["dense"] = torch.nn.functional.normalize(pooled.float(), dim=-1)
        if "vocab" in heads:
            words = self.module["bert"].get_input_embeddings().weight  # tied word embeddings [vocab, dim]
            device_type = torch.device(self.device).type
            with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=self.autocast):
                logits = (hidden @ words.T).float() + self.module.vocab_bias  # [n, T, vocab]
            if self.activation == "elu1p":
                weights = torch.nn.functional.elu(logits) + 1.0
            else:
                weights = torch.log1p(torch.relu(logits))
            keep = batch["attention_mask"].clone()
            for special in self.special_ids:  # [CLS], [SEP], [PAD] carry no term weight
                keep = keep * (batch["input_ids"] != special)
            weights = weights * keep.unsqueeze(-1).to(weights.dtype)
            out["vocab"] = weights.max(dim=1).values.float()
        return out

    def encode_numpy(self, texts: Sequence[str], kind: str, heads: Sequence[str], batch_size: int = 32) -> dict:
        """``encode`` without gradients, in batches, as float32 NumPy arrays."""
        torch = _torch()
        parts: dict[str, list[np.ndarray]] = {h: [] for h in heads}
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                out = self.encode(texts[start:start + batch_size], kind, heads)
                for head in heads:
                    parts[head].append(out[head].cpu().numpy())
        widths = {"dense": self.dim, "vocab": self.vocab_size}
        return {h: np.concatenate(v) if v else np.zeros((0, widths[h]), np.float32) for h, v in parts.items()}

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)


class BagOfTokensIndex(Index):
    """SiDR's frozen first stage: for each wordpiece, the sorted rows of the passages that contain it.

    Built once per (corpus, tokenizer, passage length) and cached on disk like every index;
    training never rebuilds it. The build streams the corpus by row in chunks of ``chunk_rows``
    (never the whole corpus in memory; a store-backed corpus is never materialised); the index is the
    binary passage x wordpiece matrix in CSC form, posting lists without a data array, in two files::

        indptr.npy  int64 [vocab + 1]: wordpiece t's rows are rows[indptr[t]:indptr[t + 1]]
        rows.npy    uint32 [entries] (uint64 past 2**32 passages): row numbers, ascending per wordpiece

    Opening maps both files (milliseconds, nothing read in proportion to the corpus). A search
    adds each query wordpiece's weight to the scores of its rows (one float32 score per passage per
    query, terms in ascending id), the exact value of ``matrix @ weights``. ``max_query_terms``
    (None: exact) keeps only each query's heaviest wordpieces: the ``elu1p`` vocabulary head gives every
    wordpiece a positive weight, so an exact search reads the whole index for every query
    (see docs/scale.md for its cost and the recall it gives up).
    """

    FORMAT = 2
    BLOCK = 1 << 21  # posting entries a search adds at once (~50 MiB of temporaries, whatever the corpus)

    def __init__(self, corpus: Corpus, encoder: R3Encoder, tokenizer_name: str, max_query_terms: int | None = None,
                 chunk_rows: int = 2048, progress: bool = True):
        if max_query_terms is not None and max_query_terms < 1:
            raise ConfigError(f"max_query_terms must be at least 1 (None: exact search), not {max_query_terms}")
        self.corpus, self.encoder, self.max_query_terms = corpus, encoder, max_query_terms
        self.chunk_rows, self.progress = chunk_rows, progress
        config = {"tokenizer": tokenizer_name, "max_tokens": encoder.max_tokens["passage"], "format": self.FORMAT}
        self.path = build_once(index_path("bag-of-tokens", config, corpus), corpus, self._build)
        self.indptr = np.load(self.path / "indptr.npy", mmap_mode="r")
        self.rows = np.load(self.path / "rows.npy", mmap_mode="r")
        if len(self.indptr) != encoder.vocab_size + 1 or int(self.indptr[-1]) != len(self.rows):
            raise ConfigError(f"the bag-of-tokens index at {self.path} does not match this encoder's vocabulary "
                              f"({len(self.indptr) - 1} wordpieces, not {encoder.vocab_size}): delete the folder")
        self.lengths = np.diff(self.indptr)  # [vocab]: 240 KiB whatever the corpus size

    # ------------------------------------------------------------------ build
    def _build(self, folder: Path) -> None:
        """Chunks of rows -> per-chunk wordpiece ids on disk (and the per-wordpiece counts), then each chunk's
        entries are written into their wordpieces' slots of ``rows.npy``: memory bounded by one chunk."""
        from ragenv.progress import progress_bar

        n, vocab = len(self.corpus), self.encoder.vocab_size
        pieces = folder / "pieces"
        pieces.mkdir()
        starts = range(0, n, self.chunk_rows)
        id_dtype = np.uint16 if vocab <= 2**16 else np.uint32
        counts = np.zeros(vocab, dtype=np.int64)
        with progress_bar(disable=not self.progress) as bar:
            task = bar.add_task(f"bag-of-tokens index of {self.corpus.name}: wordpieces", total=n)
            for chunk, start in enumerate(starts):
                stop = min(start + self.chunk_rows, n)
                indptr, ids = self.encoder.wordpieces([self.corpus[row].contents for row in range(start, stop)])
                np.save(pieces / f"{chunk:06d}.indptr.npy", indptr)
                np.save(pieces / f"{chunk:06d}.ids.npy", ids.astype(id_dtype))
                counts += np.bincount(ids, minlength=vocab)
                bar.advance(task, stop - start)
            indptr = np.zeros(vocab + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            row_dtype = np.uint32 if n < 2**32 else np.uint64
            np.lib.format.open_memmap(folder / "rows.npy", mode="w+", dtype=row_dtype, shape=(int(indptr[-1]),)).flush()
            cursor = indptr[:-1].copy()  # next free slot of each wordpiece's posting list
            task = bar.add_task(f"bag-of-tokens index of {self.corpus.name}: posting lists", total=n)
            for chunk, start in enumerate(starts):
                chunk_indptr = np.load(pieces / f"{chunk:06d}.indptr.npy")
                ids = np.load(pieces / f"{chunk:06d}.ids.npy").astype(np.int64)
                span = np.arange(start, start + len(chunk_indptr) - 1, dtype=row_dtype)
                rows = np.repeat(span, np.diff(chunk_indptr))
                order = np.argsort(ids, kind="stable")  # by wordpiece; rows stay ascending within each
                ids, rows = ids[order], rows[order]
                chunk_counts = np.bincount(ids, minlength=vocab)
                first = np.cumsum(chunk_counts) - chunk_counts  # where each wordpiece's entries start in ``ids``
                # Mapped afresh per chunk, so this process holds one chunk's pages; the kernel writes them back.
                postings = np.load(folder / "rows.npy", mmap_mode="r+")
                postings[cursor[ids] + np.arange(len(ids)) - first[ids]] = rows
                del postings
                cursor += chunk_counts
                for suffix in ("indptr", "ids"):
                    (pieces / f"{chunk:06d}.{suffix}.npy").unlink()
                bar.advance(task, len(chunk_indptr) - 1)
        assert np.array_equal(cursor, indptr[1:]), "bag-of-tokens build: posting lists not filled exactly"
        np.save(folder / "indptr.npy", indptr)
        (folder / "meta.json").write_text(json.dumps({"passages": n, "vocab": vocab, "entries": int(indptr[-1])}))
        shutil.rmtree(pieces)

    # ------------------------------------------------------------------ search
    @property
    def matrix(self):
        """The binary passage x wordpiece matrix as scipy CSR float32 (materialised: small corpora and tests only)."""
        import scipy.sparse as sp

        data = np.ones(len(self.rows), dtype=np.float32)
        csc = sp.csc_matrix((data, np.asarray(self.rows, dtype=np.int64), np.asarray(self.indptr)),
                            shape=(len(self.corpus), self.encoder.vocab_size))
        return csc.tocsr()

    def query_terms(self, weights: np.ndarray) -> np.ndarray:
        """The wordpieces a search uses, ascending: those with a nonzero weight and a posting list, only the
        ``max_query_terms`` heaviest when set (ties broken towards the lower id)."""
        terms = np.flatnonzero((weights != 0) & (self.lengths > 0))
        keep = self.max_query_terms
        if keep is None or len(terms) <= keep:
            return terms
        values = weights[terms]
        cut = np.partition(values, len(values) - keep)[len(values) - keep]  # the keep-th largest weight
        chosen = values > cut
        chosen[np.flatnonzero(values == cut)[: keep - int(chosen.sum())]] = True
        return terms[chosen]

    def scores(self, weights: np.ndarray) -> np.ndarray:
        """float32 [N]: the sum of ``weights`` over each passage's wordpieces (over :meth:`query_terms`).

        The query's posting lists, one after the other, are added in blocks of ``BLOCK`` entries with
        ``np.add.at``, which adds in order: each passage sums its wordpieces' weights in ascending id in
        float32, bit for bit scipy's ``matrix @ weights``. When the lists are adjacent in ``rows`` (an exact
        search with a dense query) they are read as one slice, without a gather.
        """
        weights = np.asarray(weights, dtype=np.float32)
        out = np.zeros(len(self.corpus), dtype=np.float32)
        terms, rows = self.query_terms(weights), self.rows.view(np.ndarray)  # slices of a view: no np.memmap each
        sizes = self.lengths[terms]
        ends = np.cumsum(sizes)  # where each term's entries end among the query's entries
        begins = ends - sizes
        shift = self.indptr[terms] - begins  # entry e of the query is rows[e + shift of its term]
        adjacent = len(terms) > 0 and bool(np.all(shift == shift[0]))
        total = int(ends[-1]) if len(terms) else 0
        for lo in range(0, total, self.BLOCK):
            hi = min(lo + self.BLOCK, total)
            part = slice(int(np.searchsorted(ends, lo, "right")), int(np.searchsorted(begins, hi, "left")))
            counts = np.minimum(ends[part], hi) - np.maximum(begins[part], lo)  # each term's entries in [lo, hi)
            if adjacent:
                index = rows[lo + shift[0]:hi + shift[0]]
            else:
                index = rows[np.arange(lo, hi) + np.repeat(shift[part], counts)]
            np.add.at(out, index.astype(np.intp), np.repeat(weights[terms[part]], counts))
        return out

    def search_vectors(self, query_weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by ``sum of the query weights over each passage's wordpieces`` (``query_weights``
        [n_queries, vocab]), scored one query at a time: never an [n_queries, N] matrix."""
        query_weights = np.atleast_2d(query_weights)
        rows = np.full((len(query_weights), k), -1, dtype=np.int64)
        scores = np.zeros((len(query_weights), k), dtype=np.float32)
        for n, weights in enumerate(query_weights):
            rows[n], scores[n] = (a[0] for a in top_k_by_score(self.scores(weights)[None], k))
        return rows, scores

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        vectors = self.encoder.encode_numpy(list(queries), "query", ("vocab",))["vocab"]
        return self.search_vectors(vectors, k)
