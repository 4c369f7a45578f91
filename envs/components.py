"""What every ragenv environment is built from: its questions, the frozen-LLM scorer and its indexes.

One home for that set-up, so RAGRetrieval-v0 and SmartRAG-v0 read data, share caches
and pick first stages the same way; and for what they do alike with it (:class:`SharedEnvMixin`:
siblings for vector environments, batched precompute).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ragenv.data import Corpus, Dataset, Question, load_dataset
from ragenv.errors import ConfigError
from ragenv.index import Index, make_index
from ragenv.llm import FrozenLLM, LLMConfig, make_llm_config
from ragenv.reward_cache import RewardCache


@dataclass
class EnvComponents:
    dataset: Dataset
    corpus: Corpus
    questions: list[Question]
    scorer: FrozenLLM
    first_stage: Index
    dense: Index | None  # the frozen-encoder index whose embeddings are the observation features


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
) -> EnvComponents:
    """Load the split (first ``limit`` questions), the scorer (shared if given) and the indexes.

    ``dtype``/``device`` set the frozen LLM's numeric setting (None: the ``llm`` config's, by
    default the canonical float32); they are checked here, before any data or model is read.
    """
    llm_config = make_llm_config(llm, dtype, device)
    if scorer is not None and (dtype is not None or device is not None):
        wanted = (llm_config.dtype, llm_config.device)
        if (scorer.config.dtype, scorer.config.device) != wanted:
            raise ConfigError(f"dtype/device {wanted} differ from the shared scorer's "
                              f"({scorer.config.dtype}, {scorer.config.device}); leave them out or build another scorer")
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, data_dir)
    questions = data.split(split)
    if limit is not None:
        questions = questions[:limit]
    if not questions:
        raise ConfigError(f"split {split!r} of {data.name!r} has no questions")
    if scorer is None:
        if isinstance(cache, (str, bytes)) or cache is None:
            cache = RewardCache(cache)
        scorer = FrozenLLM(llm_config, cache)
    first = make_index(first_stage, data.corpus)
    dense = None
    if features:
        dense = first if first_stage == "dense" else make_index("dense", data.corpus, encoder=encoder)
    return EnvComponents(data, data.corpus, questions, scorer, first, dense)


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
        other.action_space, other.observation_space = copy.deepcopy(self.action_space), copy.deepcopy(self.observation_space)
        other._clear_episode()
        return other

    def _precompute_batches(self, questions: Sequence[Question] | None, batch_size: int, progress: bool,
                            on_batch: Callable[[list[Question]], None] | None, description: str,
                            work: Callable[[list[Question]], None]) -> dict:
        """Run ``work`` on ``batch_size`` questions at a time (default: all of the split), with a progress bar.

        Each batch's results are in the reward cache when ``work`` returns; ``on_batch`` is then
        called with its questions. Returns ``questions`` and ``llm_sequences_computed``.
        """
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size!r}")
        questions = list(self.questions if questions is None else questions)
        stats = self.scorer.stats
        before = stats.generated_sequences + stats.scored_sequences
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, disable=not progress, transient=True) as bar:
            task = bar.add_task(description, total=len(questions))
            for start in range(0, len(questions), batch_size):
                chunk = questions[start:start + batch_size]
                work(chunk)
                if on_batch is not None:
                    on_batch(chunk)
                bar.advance(task, len(chunk))
        return {"questions": len(questions),
                "llm_sequences_computed": stats.generated_sequences + stats.scored_sequences - before}
