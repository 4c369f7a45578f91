"""What a SmartRAG-v0 action leads to, without Gymnasium: the outcome engine and its memos.

:class:`OutcomeEngine` answers two questions, batched and memoised (the persistent memo is the
reward cache behind :class:`ragenv.llm.FrozenLLM`):

- a question's :class:`QuestionState`: the frozen LLM's closed-book guess and its confidence,
  every query option's query (:mod:`ragenv.envs.smartrag.queries`) and its top-``n`` passages;
- the :class:`AnswerOutcome` of answering from a state (a question and its passage rows).

The environments (:class:`~ragenv.envs.smartrag.SmartRAGEnv`, the text variant's free-text
searches), the vector environment (one :meth:`OutcomeEngine.resolve` per vector step) and the
oracle baseline (:meth:`OutcomeEngine.sequence_answers`) all read outcomes here. Rewards are not
computed here: they depend on ``alpha``, which the environment owns.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ragenv.data import Corpus, Question
from ragenv.envs.smartrag.queries import QUERY_OPTIONS, QueryInputs, write_queries
from ragenv.index import Index
from ragenv.llm import AnswerScore, FrozenLLM, Generation, PromptRequest, PromptResult
from ragenv.metrics import answer_in_output, exact_match, f1_score, normalize_answer

State = tuple[Question, tuple[int, ...]]  # a question and the passage rows gathered so far


def guess_support(guess: str, passages: Sequence[str]) -> float:
    """1.0 when the closed-book guess occurs, as whole words after SQuAD normalisation, in one of the passages.

    Whether the corpus backs the LLM's own guess; what it is worth as a feature is measured in
    docs/results/smartrag.md (the paragraph on ``closed_book_support``). An empty guess is never supported.
    """
    needle = normalize_answer(guess)
    if not needle:
        return 0.0
    return float(any(f" {needle} " in f" {normalize_answer(text)} " for text in passages))


@dataclass(frozen=True)
class QuestionState:
    """What the frozen LLM and the first stage say about a question before any action."""

    guess: str  # the frozen LLM's closed-book (greedy) answer
    confidence: tuple[float, float]  # exp(mean token log-prob), exp(sum log-prob) of that answer, closed-book
    queries: Mapping[str, str]  # query option name -> query text, in action order (QUERY_OPTIONS)
    rows: tuple[tuple[int, ...], ...]  # top-n corpus rows per query option (index: action - 1)
    top_scores: tuple[float, ...]  # first-stage score of each option's top-1 passage (0 if none)
    support: tuple[float, ...]  # 1 where the closed-book guess occurs in that option's top-n passages
    cached: bool  # every LLM result came from the persistent reward cache


@dataclass(frozen=True)
class AnswerOutcome:
    text: str
    em: float
    f1: float
    accuracy: float
    cached: bool


class SequenceAnswer(NamedTuple):
    """A reachable sequence of query options (then ANSWER) and the frozen LLM's answer at its end."""

    options: tuple[int, ...]  # query option indices, in retrieval order
    answer: AnswerOutcome


class _FirstCall(NamedTuple):
    """The results of the first batched frozen-LLM call of :meth:`OutcomeEngine.resolve`, by group."""

    guesses: list[PromptResult]  # closed-book answer of each new question
    written: list[PromptResult]  # the LLM's search query for each new question
    answers: list[PromptResult]  # the answer at each new state


def _generated(result: PromptResult) -> Generation:
    assert result.generation is not None, "a generating request returns a generation"
    return result.generation


def _scored(result: PromptResult) -> AnswerScore:
    assert result.score is not None, "a scoring request returns a score"
    return result.score


def _run_groups(scorer: FrozenLLM, groups: Sequence[Sequence[PromptRequest]]) -> list[list[PromptResult]]:
    """One ``scorer.run`` over the groups' requests in order; its results cut back into the same groups."""
    results = iter(scorer.run([request for group in groups for request in group]))
    return [list(itertools.islice(results, len(group))) for group in groups]


def merge_rows(rows: tuple[int, ...], new: Sequence[int]) -> tuple[int, ...]:
    """State passages after a retrieval: the old ones, then the new ones not already there."""
    seen = set(rows)
    added = []
    for r in new:
        if r >= 0 and r not in seen:
            seen.add(r)
            added.append(r)
    return rows + tuple(added)


def reachable_sequences(max_retrievals: int) -> list[tuple[int, ...]]:
    """Every legal sequence of query options (distinct, at most ``max_retrievals``), shortest first."""
    m = len(QUERY_OPTIONS)
    return [seq for n in range(max_retrievals + 1) for seq in itertools.permutations(range(m), n)]


class OutcomeEngine:
    """The frozen LLM's and the first stage's outcomes of SmartRAG-v0 actions, batched and memoised.

    ``dense`` (the frozen-encoder index, or None) adds each question's embedding. Engines are
    shared by sibling environments (vector sub-environments), so every memo is seen by all.
    """

    def __init__(self, corpus: Corpus, first_stage: Index, scorer: FrozenLLM, *, top_n: int, max_retrievals: int,
                 dense: Index | None = None):
        self.corpus, self.first_stage, self.scorer, self.dense = corpus, first_stage, scorer, dense
        self.top_n, self.max_retrievals = int(top_n), int(max_retrievals)
        # Per-process memos of the hot paths; the persistent one is the reward cache.
        self._question_states: dict[str, QuestionState] = {}
        self._answers: dict[tuple[str, tuple[int, ...]], AnswerOutcome] = {}
        self._question_embeddings: dict[str, np.ndarray] = {}
        self._searches: dict[str, tuple[int, ...]] = {}

    # ------------------------------------------------------------------ batched resolution
    def resolve(self, questions: Sequence[Question], pairs: Sequence[State]) -> None:
        """Memoise the question states of ``questions`` and the answers at the ``pairs`` states.

        Two batched frozen-LLM calls at most: one for every independent prompt (closed-book
        guesses, LLM-written queries and the answers), then one scoring the guesses (the
        closed-book confidence), which depends on the first. :meth:`prepare` and :meth:`answers`
        are this with one side empty; a vector environment passes both sides of all its
        sub-environments at once.
        """
        todo = [q for q in dict.fromkeys(questions) if q.id not in self._question_states]
        answer_todo = list(dict.fromkeys((q, tuple(rows)) for q, rows in pairs
                                         if (q.id, tuple(rows)) not in self._answers))
        if not todo and not answer_todo:
            return
        first = _FirstCall(*_run_groups(self.scorer, [
            [PromptRequest(question=q, passages=(), answers=(), generate=True) for q in todo],
            [PromptRequest(question=q, passages=(), answers=(), generate=True, task="search_query") for q in todo],
            [PromptRequest(question=q, passages=tuple(self.corpus[r] for r in rows), answers=(), generate=True)
             for q, rows in answer_todo],
        ]))
        for (q, rows), result in zip(answer_todo, first.answers):
            text = _generated(result).text
            self._answers[(q.id, rows)] = AnswerOutcome(text, exact_match(text, q.answers), f1_score(text, q.answers),
                                                        answer_in_output(text, q.answers), _generated(result).cached)
        if todo:
            self._add_question_states(todo, first)

    def _add_question_states(self, todo: list[Question], first: _FirstCall) -> None:
        """Score the closed-book guesses, write every option's query, retrieve, and memoise the states."""
        guesses, written = [_generated(r) for r in first.guesses], [_generated(r) for r in first.written]
        scored = [_scored(r) for r in self.scorer.run([PromptRequest(question=q, passages=(), answers=(g.text,))
                                                       for q, g in zip(todo, guesses)])]
        queries = [write_queries(QueryInputs(question=q.question, guess=guess.text, written=query.text))
                   for q, guess, query in zip(todo, guesses, written)]
        rows, scores = self.first_stage.search([text for texts in queries for text in texts.values()], self.top_n)
        per_question = zip(todo, guesses, written, scored, queries,
                           rows.reshape(len(todo), len(QUERY_OPTIONS), -1),
                           scores.reshape(len(todo), len(QUERY_OPTIONS), -1))
        for q, guess, query, score, texts, found, found_scores in per_question:
            option_rows = tuple(tuple(int(r) for r in row if r >= 0) for row in found)
            top = tuple(float(s[0]) if len(row) and row[0] >= 0 else 0.0 for s, row in zip(found_scores, found))
            support = tuple(guess_support(guess.text, [self.corpus[r].contents for r in option])
                            for option in option_rows)
            mean, total = score.mean_logprob, score.sum_logprob
            confidence = (math.exp(mean) if math.isfinite(mean) else 0.0,
                          math.exp(total) if math.isfinite(total) else 0.0)
            cached = bool(guess.cached and query.cached and score.cached)
            state = QuestionState(guess.text, confidence, texts, option_rows, top, support, cached)
            self._question_states[q.id] = state
        if self.dense is not None:
            missing = [q for q in todo if q.id not in self._question_embeddings]
            encoder = self.dense.query_encoder  # type: ignore[attr-defined]  # the dense index's question encoder
            vectors = np.clip(encoder.encode([q.question for q in missing]), -1.0, 1.0)
            for q, vec in zip(missing, vectors):
                self._question_embeddings[q.id] = vec.astype(np.float32)

    def prepare(self, questions: Sequence[Question]) -> None:
        """Closed-book guess, its confidence, the LLM's search query and every option's retrieval, batched."""
        self.resolve(questions, ())

    # ------------------------------------------------------------------ lookups
    def question_state(self, question: Question) -> QuestionState:
        state = self._question_states.get(question.id)
        if state is None:
            self.prepare([question])
            state = self._question_states[question.id]
        return state

    def question_embedding(self, question: Question) -> np.ndarray:
        """The frozen-encoder embedding of the question, clipped to [-1, 1] (needs ``dense``)."""
        self.question_state(question)
        return self._question_embeddings[question.id]

    def answers(self, pairs: Sequence[State]) -> list[AnswerOutcome]:
        """The frozen LLM's answer from each (question, passage rows) state, with one batched LLM call."""
        self.resolve((), pairs)
        return [self._answers[(q.id, tuple(rows))] for q, rows in pairs]

    def search(self, query: str) -> tuple[int, ...]:
        """Top-n corpus rows of a free-text query (memoised; no LLM call)."""
        rows = self._searches.get(query)
        if rows is None:
            found, _ = self.first_stage.search([query], self.top_n)
            rows = tuple(int(r) for r in found[0] if r >= 0)
            self._searches[query] = rows
        return rows

    # ------------------------------------------------------------------ every reachable state
    def reachable_sequences(self) -> list[tuple[int, ...]]:
        """Every legal sequence of query options (distinct, at most ``max_retrievals``), shortest first."""
        return reachable_sequences(self.max_retrievals)

    def rows_after(self, question: Question, options: Sequence[int]) -> tuple[int, ...]:
        """The passages of the state reached by retrieving with ``options`` (query option indices) in order."""
        state = self.question_state(question)
        rows: tuple[int, ...] = ()
        for option in options:
            rows = merge_rows(rows, state.rows[option])
        return rows

    def sequence_answers(self, question: Question) -> list[SequenceAnswer]:
        """Every reachable sequence of query options with the answer at its end (one batched LLM call)."""
        sequences = self.reachable_sequences()
        outcomes = self.answers([(question, self.rows_after(question, s)) for s in sequences])
        return [SequenceAnswer(seq, outcome) for seq, outcome in zip(sequences, outcomes)]

    def fill(self, questions: Sequence[Question]) -> None:
        """Every LLM result episodes of ``questions`` can reach: their states, then every reachable answer."""
        sequences = self.reachable_sequences()
        self.prepare(questions)
        self.answers([(q, rows) for q in questions for rows in dict.fromkeys(self.rows_after(q, s) for s in sequences)])
