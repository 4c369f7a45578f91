"""What a run is about, declared once: the environment, its questions, the frozen LLM and its numeric setting.

:class:`RunSpec` is the typed set of settings that ``evaluate`` (:class:`ragenv.evaluate.EvalConfig`),
``precompute`` (:class:`ragenv.distributed.PrecomputeJob`), ``bench``
(:class:`ragenv.bench.BenchConfig`) and the leaderboard share; each adds only its own fields.
:meth:`RunSpec.make_kwargs` turns it into the ``gym.make`` keywords, and the CLI declares each of
its options once (``ragenv.cli``). Defaults that appear anywhere else refer to the constants here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ragenv.errors import ConfigError
from ragenv.numerics import CANONICAL_DTYPE, check_dtype

DEFAULT_LLM = "gemma-3-270m"  # the frozen LLM of every published figure
DEFAULT_ENV = "RAGRetrieval-v0"
DEFAULT_DATASET = "nq"


@dataclass(frozen=True)
class RunSpec:
    """The environment and question slice a run covers, and the frozen LLM it reads them with.

    ``limit``: the first N questions of the split (None: all). ``data_dir``: the data folder
    (None: ``RAGENV_DATA``, else the checked download). ``corpus``: serve the questions over a
    corpus store (``ragenv corpus ingest``/``synth``; None: the dataset's own corpus). ``env_options``: the
    environment's own keywords (``k``, ``reward``, ``alpha``, ...; see :func:`ragenv.evaluate.env_options_for`),
    which the environment itself checks when it is made.
    """

    env: str = DEFAULT_ENV
    dataset: str = DEFAULT_DATASET
    split: str = "test"
    limit: int | None = None
    llm: str = DEFAULT_LLM
    dtype: str = CANONICAL_DTYPE  # the frozen LLM's numeric setting (float32 is canonical)
    device: str = "auto"
    data_dir: str | None = None
    corpus: str | None = None  # a corpus store (name or folder) instead of the dataset's own corpus
    env_options: dict = field(default_factory=dict)

    def __post_init__(self):
        check_dtype(self.dtype)
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int)
                                       or self.limit < 1):
            raise ConfigError(f"limit must be a positive number of questions (or None for all), got {self.limit!r}")
        for name in ("dataset", "split", "llm", "device"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name} must be a non-empty string, got {value!r}")

    def make_kwargs(self, **extra: Any) -> dict[str, Any]:
        """The ``gym.make(self.env, **kwargs)`` keywords of this run; ``extra`` adds or overrides some."""
        corpus = {"corpus": self.corpus} if self.corpus is not None else {}
        return {"dataset": self.dataset, "split": self.split, "limit": self.limit, "llm": self.llm,
                "dtype": self.dtype, "device": self.device, "data_dir": self.data_dir, **corpus, **self.env_options,
                **extra}


def corpus_record(corpus: Any) -> dict[str, str]:
    """What a record (a trained agent's metadata, a checkpoint's identity) says about the corpus a run was
    served over: the store's name and fingerprint for a corpus store (``corpus=``), nothing for the
    dataset's own corpus, so records of ordinary runs stay as they were."""
    if getattr(corpus, "store", None) is None:
        return {}
    return {"corpus": corpus.name, "corpus_fingerprint": corpus.fingerprint}
