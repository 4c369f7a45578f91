"""What every ragenv environment is built from: its questions, the frozen-LLM scorer and its indexes.

One home for that set-up, so RAGRetrieval-v0 and SmartRAG-v0 read data, share caches
and pick first stages the same way; and for what they do alike with it (:class:`SharedEnvMixin`:
siblings for vector environments, batched precompute).
"""
from __future__ import annotations

import copy
import functools
import math
import numbers
import os
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragenv.data import Corpus, Dataset, Question, load_dataset, open_corpus, questions_without_gold
from ragenv.errors import ConfigError
from ragenv.index import Index, check_index_name, make_index
from ragenv.llm import FrozenLLM, LLMConfig, make_llm_config
from ragenv.reward_cache import RewardCache


@dataclass
class EnvComponents:
    dataset: Dataset
    corpus: Corpus
    questions: list[Question]
    scorer: FrozenLLM
    first_stage: Index
    dense: Any  # the observation features' encoder (DenseIndex or LiveEmbeddings), None without features


def build_components(
    dataset: str | Dataset,
    split: str,
    limit: int | None,
    data_dir: str | None,
    llm: str | LLMConfig,
    cache: RewardCache | str | None,
    scorer: FrozenLLM | None,
    first_stage: str,
    features: bool,
    encoder: str,
    *,
    dtype: str | None = None,
    device: str | None = None,
    corpus: str | None = None,
) -> EnvComponents:
    """Load the split (first ``limit`` questions), the scorer (shared if given) and the indexes.

    ``corpus``: a corpus store (name or folder, :mod:`ragenv.corpus`) to serve the questions over
    instead of their own corpus; gold passages are resolved by id, else by content
    (:meth:`ragenv.data.Dataset.with_corpus`), and a split none of whose questions keeps a gold
    passage is refused.

    ``dtype``/``device`` set the frozen LLM's numeric setting (None: the ``llm`` config's, by
    default the canonical float32); they are checked here, before any data or model is read, with every
    other keyword (:func:`check_component_keywords`).
    """
    check_component_keywords(dataset, split, limit, data_dir, cache, scorer, first_stage, features, encoder)
    if corpus is not None and not (isinstance(corpus, (str, os.PathLike)) and str(corpus)):
        raise ConfigError(f"corpus must be a corpus store name or folder (or None: the dataset's own), got {corpus!r}")
    one_torch_thread_in_forked_children()
    llm_config = make_llm_config(llm, dtype, device)
    if scorer is not None and (dtype is not None or device is not None):
        wanted = (llm_config.dtype, llm_config.device)
        if (scorer.config.dtype, scorer.config.device) != wanted:
            raise ConfigError(f"dtype/device {wanted} differ from the shared scorer's "
                              f"({scorer.config.dtype}, {scorer.config.device}); "
                              "leave them out or build another scorer")
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, data_dir)
    if corpus is not None:
        data = data.with_corpus(open_corpus(corpus))
    questions = data.split(split)
    if limit is not None:
        questions = questions[:limit]
    if not questions:
        raise ConfigError(f"split {split!r} of {data.name!r} has no questions")
    if corpus is not None and questions_without_gold(questions) == len(questions):
        raise ConfigError(f"none of the {len(questions)} questions of {data.name}/{split} has a gold passage in corpus "
                          f"{data.corpus.name!r} (looked up by id and by title and text): is it the corpus they were "
                          "written for?")
    if scorer is None:
        if isinstance(cache, (str, bytes, os.PathLike)) or cache is None:
            cache = RewardCache(cache)
        scorer = FrozenLLM(llm_config, cache)
    first = make_index(first_stage, data.corpus)
    dense = None
    if features:  # the dense first stage's matrix when there is one; otherwise embedded when first shown
        from ragenv.index.dense import LiveEmbeddings

        dense = first if first_stage == "dense" else LiveEmbeddings(data.corpus, encoder)
    return EnvComponents(data, data.corpus, questions, scorer, first, dense)


# --------------------------------------------------------------------------- make-time keyword checks
# gym.make keywords are checked before any data or model is read, each failure in one line naming
# the keyword and the value (a NaN cost would otherwise turn every reward into NaN).


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (Python or NumPy integers; not bools), else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(name: str, value: Any, minimum: float | None = None) -> float:
    """``value`` as a finite float (>= ``minimum`` if given; not bools), else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or (minimum is not None and value < minimum):
        bound = f" >= {minimum:g}" if minimum is not None else ""
        raise ConfigError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool (Python or NumPy), else ConfigError (a string such as ``"no"`` is not a flag)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """``value`` if it is one of ``choices``, else ConfigError listing them."""
    if not isinstance(value, (str, type(None))) or value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_component_keywords(dataset: Any, split: Any, limit: Any, data_dir: Any, cache: Any, scorer: Any,
                             first_stage: Any, features: Any, encoder: Any) -> None:
    """The :func:`build_components` keywords, checked before anything is loaded (ConfigError, one line)."""
    if not (isinstance(dataset, (Dataset, os.PathLike)) or (isinstance(dataset, str) and dataset)):
        raise ConfigError(f"dataset must be a dataset name, a folder or a Dataset, got {dataset!r}")
    if not (isinstance(split, str) and split):
        raise ConfigError(f"split must be a split name such as 'train' or 'test', got {split!r}")
    if limit is not None:
        check_int("limit", limit)
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise ConfigError(f"data_dir must be a folder path or None, got {data_dir!r}")
    if cache is not None and not isinstance(cache, (str, bytes, os.PathLike, RewardCache)):
        raise ConfigError(f"cache must be a RewardCache, a file path or None, got {cache!r}")
    if scorer is not None and not (isinstance(scorer, FrozenLLM) or callable(getattr(scorer, "run", None))):
        raise ConfigError(f"scorer must be a FrozenLLM or None, got {type(scorer).__name__}")
    check_index_name(first_stage)
    check_flag("features", features)
    if not (isinstance(encoder, str) and encoder):
        raise ConfigError(f"encoder must be an encoder name or path, got {encoder!r}")


# --------------------------------------------------------------------------- forked workers


@functools.cache
def one_torch_thread_in_forked_children() -> None:
    """Make every process forked from this one run torch on one thread (registered once per process).

    Gymnasium's ``AsyncVectorEnv`` forks its workers (the default start method on Linux). A child
    forked after torch's OpenMP thread pool has run (the frozen LLM or the encoder stepped in
    this process) hangs in its first multi-threaded torch operation: the pool's threads do not
    exist in the child. On one thread torch never enters the pool, so the workers run (as
    PyTorch's own ``DataLoader`` workers do); the parent's thread count is untouched. A ``spawn``
    context (``vector_kwargs={"context": "spawn"}``) avoids the hazard too, at the cost of
    loading everything again in every worker.
    """
    def child() -> None:
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(1)

    os.register_at_fork(after_in_child=child)


class SharedEnvMixin:
    """Siblings and batched precompute, alike for RAGRetrieval-v0 and SmartRAG-v0.

    The environment provides ``scorer``, ``questions``, the spaces and ``_clear_episode()``
    (forget the episode in progress).
    """

    def sibling(self):
        """Another environment with the same settings, sharing data, indexes, scorer and memos.

        Its episode state and random generator are its own (seed it with ``reset(seed=...)``).
        Vector environments (:mod:`ragenv.envs.vector`) build their sub-environments this way
        instead of loading everything ``num_envs`` times.
        """
        other = copy.copy(self)
        other._np_random, other._np_random_seed = None, None
        other.action_space = copy.deepcopy(self.action_space)
        other.observation_space = copy.deepcopy(self.observation_space)
        other._clear_episode()
        return other

    def _precompute_batches(self, questions: Sequence[Question] | None, batch_size: int, progress: bool,
                            on_batch: Callable[[list[Question]], None] | None, description: str,
                            work: Callable[[list[Question]], None]) -> dict:
        """Run ``work`` on ``batch_size`` questions at a time (default: all of the split), with a progress bar.

        Each batch's results are in the reward cache when ``work`` returns; ``on_batch`` is then
        called with its questions. Returns ``questions`` and ``llm_sequences_computed``.
        """
        from ragenv.progress import progress_bar

        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size!r}")
        questions = list(self.questions if questions is None else questions)
        stats = self.scorer.stats
        before = stats.generated_sequences + stats.scored_sequences
        with progress_bar(disable=not progress) as bar:
            task = bar.add_task(description, total=len(questions))
            for start in range(0, len(questions), batch_size):
                chunk = questions[start:start + batch_size]
                work(chunk)
                if on_batch is not None:
                    on_batch(chunk)
                bar.advance(task, len(chunk))
        return {"questions": len(questions),
                "llm_sequences_computed": stats.generated_sequences + stats.scored_sequences - before}
