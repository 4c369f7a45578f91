"""What every ragenv environment is built from: its questions, the frozen-LLM scorer and its indexes.

One home for that set-up, so RAGRetrieval-v0 and SmartRAG-v0 read data, share caches
and pick first stages the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

from ragenv.data import Corpus, Dataset, Question, load_dataset
from ragenv.errors import ConfigError
from ragenv.index import Index, make_index
from ragenv.llm import FrozenLLM, LLMConfig
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
) -> EnvComponents:
    """Load the split (first ``limit`` questions), the scorer (shared if given) and the indexes."""
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, data_dir)
    questions = data.split(split)
    if limit is not None:
        questions = questions[:limit]
    if not questions:
        raise ConfigError(f"split {split!r} of {data.name!r} has no questions")
    if scorer is None:
        if isinstance(cache, (str, bytes)) or cache is None:
            cache = RewardCache(cache)
        scorer = FrozenLLM(llm if isinstance(llm, LLMConfig) else LLMConfig(name=llm), cache)
    first = make_index(first_stage, data.corpus)
    dense = None
    if features:
        dense = first if first_stage == "dense" else make_index("dense", data.corpus, encoder=encoder)
    return EnvComponents(data, data.corpus, questions, scorer, first, dense)
