"""Baseline agents for RAGRetrieval-v0: each maps an observation to k corpus rows.

- ``bm25``: Lucene BM25 through pyserini (the reference); ``bm25s``: the in-process twin.
- ``dense``: all-MiniLM-L6-v2 exact inner-product search (DPR-style bi-encoder).
- ``closed-book``: no passage; ``oracle``: the gold passages; ``random``: uniform rows.

Each follows :class:`ragenv.registry.RetrievalAgent`: ``act(observation, info)`` for the
current question and ``act_batch(questions)`` for many at once; they are registered in
:data:`ragenv.registry.AGENTS`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ragenv.data import Question
from ragenv.envs.retrieval import EMPTY, RAGRetrievalEnv
from ragenv.index import Index


class RetrieverAgent:
    """Top-k of an index searched with the question text."""

    def __init__(self, env: RAGRetrievalEnv, index_kind: str, name: str | None = None, **index_options):
        from ragenv.index import make_index

        self.env = env
        self.name = name or index_kind
        if index_kind == env.first_stage_name and not index_options:
            self.index = env.first_stage
        elif index_kind == "dense" and isinstance(env.dense, Index) and not index_options:
            self.index = env.dense  # the environment's dense index (not its live features: they do not search)
        else:
            self.index = make_index(index_kind, env.corpus, **index_options)

    def act(self, observation, info=None) -> np.ndarray:
        rows, _ = self.index.search_one(observation["question"], self.env.k)
        return rows.astype(np.int64)

    def act_batch(self, questions: Sequence[Question]) -> np.ndarray:
        rows, _ = self.index.search([q.question for q in questions], self.env.k)
        return rows.astype(np.int64)


class ClosedBookAgent:
    name = "closed-book"

    def __init__(self, env: RAGRetrievalEnv):
        self.env = env

    def act(self, observation, info=None) -> np.ndarray:
        return np.full(self.env.k, EMPTY, dtype=np.int64)

    def act_batch(self, questions: Sequence[Question]) -> np.ndarray:
        return np.full((len(questions), self.env.k), EMPTY, dtype=np.int64)


class OracleAgent:
    """The gold passages (up to k), read from the environment's current question: an upper bound."""

    name = "oracle"

    def __init__(self, env: RAGRetrievalEnv):
        self.env = env

    def act(self, observation, info=None) -> np.ndarray:
        return self.act_batch([self.env.current_question])[0]

    def act_batch(self, questions: Sequence[Question]) -> np.ndarray:
        rows = np.full((len(questions), self.env.k), EMPTY, dtype=np.int64)
        for n, question in enumerate(questions):
            gold = [self.env.corpus.row(pid) for pid in question.gold_passage_ids if pid in self.env.corpus]
            rows[n, : len(gold[: self.env.k])] = gold[: self.env.k]
        return rows


class RandomAgent:
    name = "random"

    def __init__(self, env: RAGRetrievalEnv, seed: int = 0):
        self.env = env
        self.rng = np.random.default_rng(seed)

    def act(self, observation, info=None) -> np.ndarray:
        return self.rng.choice(len(self.env.corpus), size=self.env.k, replace=False).astype(np.int64)

    def act_batch(self, questions: Sequence[Question]) -> np.ndarray:
        """One draw per question, in order: the same rows as ``act`` over the same questions."""
        return np.stack([self.act(None) for _ in questions]) if questions else np.zeros((0, self.env.k), np.int64)
