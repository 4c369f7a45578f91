"""The R3 retriever network and its frozen bag-of-tokens index.

``R3Encoder`` is a BERT-architecture encoder (all-MiniLM-L6-v2 by default) with two heads:

- a **dense head**: mean-pooled last hidden states, L2-normalised (at initialisation exactly
  the frozen dense baseline's embedding);
- a **vocabulary head** in the VDR/SiDR style: every last hidden state is projected onto the
  tied word-embedding matrix (plus a learned bias), passed through a positive activation
  (``elu1p`` = ELU + 1, or ``relu_log1p`` = log(1 + ReLU)) and max-pooled over the tokens,
  giving one weight per wordpiece: a 30,522-dimensional vector.

``BagOfTokensIndex`` is SiDR's non-parametric side: a binary passage x wordpiece matrix
built once from the tokenizer alone (no parameters, so it never goes stale) and searched
with the live query vocabulary vector: ``score(q, d) = sum of v_q over d's wordpieces``.
"""
from __future__ import annotations

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
    def bag_of_tokens(self, texts: Sequence[str], kind: str = "passage"):
        """Binary text x wordpiece matrix (scipy CSR, float32): which wordpieces each text contains."""
        import scipy.sparse as sp

        ids = self.tokenizer(list(texts), add_special_tokens=False, truncation=True,
                             max_length=self.max_tokens[kind])["input_ids"]
        special = set(self.special_ids)
        indptr, indices = [0], []
        for row in ids:
            unique = sorted(set(row) - special)
            indices.extend(unique)
            indptr.append(len(indices))
        data = np.ones(len(indices), dtype=np.float32)
        return sp.csr_matrix((data, np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
                             shape=(len(ids), self.vocab_size))

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
    """SiDR's frozen first stage: binary passage x wordpiece matrix, searched with a query weight vector.

    Built once per (corpus, tokenizer, passage length) and cached on disk like every index;
    training never rebuilds it. ``search`` takes texts and a query-vector function.
    """

    FORMAT = 1

    def __init__(self, corpus: Corpus, encoder: R3Encoder, tokenizer_name: str):
        import scipy.sparse as sp

        self.corpus, self.encoder = corpus, encoder
        config = {"tokenizer": tokenizer_name, "max_tokens": encoder.max_tokens["passage"], "format": self.FORMAT}
        self.path = build_once(index_path("bag-of-tokens", config, corpus), corpus, self._build)
        self.matrix = sp.load_npz(self.path / "bag_of_tokens.npz").tocsr()

    def _build(self, folder: Path) -> None:
        import scipy.sparse as sp

        sp.save_npz(folder / "bag_of_tokens.npz", self.encoder.bag_of_tokens(self.corpus.contents, "passage"))

    def search_vectors(self, query_weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by ``sum of the query weights over each passage's wordpieces``."""
        scores = np.asarray((self.matrix @ np.asarray(query_weights, dtype=np.float32).T).T)  # [n_queries, N]
        return top_k_by_score(scores, k)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        vectors = self.encoder.encode_numpy(list(queries), "query", ("vocab",))["vocab"]
        return self.search_vectors(vectors, k)
