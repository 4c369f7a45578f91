"""How much R3's training signal could buy: the top-k by the LLM's single-passage feedback vs dense top-k.

Usage: RAGENV_DATA=../shared/data .venv/bin/python experiments/r3_feedback_ceiling.py [--split train] [--limit 200]

For each question, the candidates of R3's ``bm25s+dense`` first stage (frozen BM25 top-20 and
the starting dense top-20) are scored one by one by the frozen LLM (what R3 trains on,
served by the reward cache after ``ragenv train r3``). Two top-k choices are then evaluated
like ``ragenv evaluate`` does (joint prompt, reward, EM, F1, accuracy, hit@k):

- ``dense``: the dense MiniLM baseline's top-k over the whole corpus (R3's starting point);
- ``feedback-oracle``: the k candidates with the highest single-passage log-prob, the ranking
  a retriever that learned R3's signal perfectly would return.

The gap is the ceiling of what R3 can gain over dense with this LLM and corpus.

A second table shows what the threshold rule makes of that feedback, for the default rule and
for each ``--positive-window W``: positives and negatives per question, the share of positives
that are a gold passage, and the share of questions whose gold passage is a positive.
``--thresholds-only`` prints just that table (no answer generation, so cheap on many questions).

It reads the gold answers, so it refuses the test split; run it on training questions.
"""
from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.table import Table

import ragenv  # noqa: F401 - registers the environments
from ragenv.agents.r3 import R3Config
from ragenv.agents.r3.training import R3Retriever, feedback_for, thresholds

METRICS = ("reward", "answer_logprob", "logprob_gain", "em", "f1", "accuracy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="nq")
    parser.add_argument("--split", default="train", choices=("train", "dev"))
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--positive-window", type=float, action="append", default=[],
                        help="also show the threshold rule with this R3Config.positive_window (repeatable)")
    parser.add_argument("--thresholds-only", action="store_true", help="skip the top-k outcome table")
    args = parser.parse_args()

    env = gym.make("RAGRetrieval-v0", dataset=args.dataset, split=args.split, limit=args.limit, k=args.k,
                   generate_answers=True)
    base = env.unwrapped
    questions = list(base.questions)
    retriever = R3Retriever(R3Config(first_stage="bm25s+dense", k=args.k), base.corpus)
    rows = retriever.candidates(questions)
    closed, single = feedback_for(base, questions, rows)
    print_threshold_rules(base, questions, rows, closed, single, args.positive_window)
    if args.thresholds_only:
        return
    order = np.argsort(-np.nan_to_num(single, nan=-np.inf), axis=1, kind="stable")[:, : args.k]
    dense_index = retriever.first_stage[1]  # the frozen starting dense index: the dense baseline
    choices = {"dense": dense_index.search([q.question for q in questions], args.k)[0],
               "feedback-oracle": np.take_along_axis(rows, order, axis=1)}
    hit = f"hit@{args.k}"
    table = Table(title=f"{args.dataset} {args.split}, first {len(questions)} questions, k = {args.k}")
    for name in ("top-k", *METRICS, hit):
        table.add_column(name)
    for name, chosen in choices.items():
        outcomes = base.outcomes(list(zip(questions, chosen.tolist())))
        values = {"reward": np.mean([o.reward for o in outcomes]),
                  **{m: np.mean([o.info[m] for o in outcomes]) for m in (*METRICS[1:], hit)}}
        table.add_row(name, *(f"{values[m]:.3f}" for m in (*METRICS, hit)))
    Console(width=120).print(table)
    print(f"LLM sequences computed: {base.scorer.stats.scored_sequences} scored, "
          f"{base.scorer.stats.generated_sequences} generated (the rest came from the reward cache)")


def print_threshold_rules(base, questions, rows, closed, single, windows) -> None:
    """Positives and negatives per question under each threshold rule, and how many positives are gold passages."""
    is_gold = np.array([[r >= 0 and base.corpus[r].id in q.gold_passage_ids for r in row]
                        for q, row in zip(questions, rows.tolist())])  # -1 pads are never gold
    table = Table(title=f"threshold rules on {len(questions)} questions' {rows.shape[1]} candidates")
    for name in ("rule", "positives / question", "negatives / question", "positives that are gold",
                 "questions with gold among positives"):
        table.add_column(name)
    for window in (None, *windows):
        upper, lower = thresholds(closed, single, R3Config(positive_window=window))
        positive = single >= upper[:, None]
        negative = single <= lower[:, None]
        table.add_row("default" if window is None else f"--positive-window {window:g}",
                      f"{positive.sum(axis=1).mean():.2f}", f"{negative.sum(axis=1).mean():.2f}",
                      f"{(positive & is_gold).sum() / max(positive.sum(), 1):.3f}",
                      f"{(positive & is_gold).any(axis=1).mean():.3f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
