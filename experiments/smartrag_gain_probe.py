"""Can SmartRAG-v0's first observation tell which questions one retrieval pays off on?

A supervised probe, stronger than PPO by construction: for every question it reads the full
hindsight reward table (``SmartRAGEnv.sequence_outcomes``: the return of answering now and of
each single retrieval), fits one regressor per query option from the first observation to
that option's gain over answering now, and retrieves with the best predicted option only
where the predicted gain is positive. Scored by repeated 5-fold cross-validation, so every
question is scored by a model that never saw it. If this probe cannot beat never-retrieve,
a policy trained on rewards from the same observation has nothing to learn from.

Usage (after ``ragenv precompute --env SmartRAG-v0 --dataset DATASET --split train``; no LLM
call is made on a warm cache). Run it on training splits only, never on test:
    RAGENV_DATA=../shared/data .venv/bin/python experiments/smartrag_gain_probe.py hotpotqa train
    RAGENV_DATA=../shared/data .venv/bin/python experiments/smartrag_gain_probe.py nq train --limit 500

Prints never-retrieve, each always-retrieve, the hindsight oracle (one retrieval at most)
and the probe's cross-validated reward for each observation-key set and regressor.
"""
from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ragenv  # noqa: F401  (registers the environments)
from ragenv.envs.smartrag import QUERY_OPTIONS

KEY_SETS = {
    "scores (PPO default)": ("query_scores",),
    "scores + per-word scores + guess support": ("query_scores", "query_scores_per_word", "closed_book_support"),
    "scores + confidence": ("query_scores", "closed_book_confidence"),
    "scores + confidence + question embedding": ("query_scores", "closed_book_confidence", "question_embedding"),
}
REGRESSORS = {
    "ridge": lambda: make_pipeline(StandardScaler(), Ridge(alpha=100.0)),
    "boosted trees": lambda: GradientBoostingRegressor(n_estimators=50, max_depth=2, learning_rate=0.05,
                                                       subsample=0.8, random_state=0),
}


def reward_table(env) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], tuple[int, int]]:
    """Per question: the return of answering now, each option's gain over it, and the first observation;
    also (retrieved states whose answer is empty or a bare ``Answer:`` label, retrieved states)."""
    base = env.unwrapped
    answer_now, gains, observations = [], [], {}
    no_answer = retrieved = 0
    for question in base.questions:
        outcomes = base.sequence_outcomes(question)
        returns = {seq: ret for seq, ret, _ in outcomes}
        for seq, _, outcome in outcomes:
            if seq:
                retrieved += 1
                no_answer += outcome.text.strip().lower().rstrip(":") in ("answer", "")
        answer_now.append(returns[()])
        gains.append([returns[(o,)] - returns[()] for o in range(len(QUERY_OPTIONS))])
        observation, _ = env.reset(options={"question_id": question.id})
        for key, value in observation.items():
            observations.setdefault(key, []).append(np.asarray(value, dtype=np.float64).ravel())
    return (np.array(answer_now), np.array(gains), {k: np.stack(v) for k, v in observations.items()},
            (no_answer, retrieved))


def cross_validated_reward(features: np.ndarray, answer_now: np.ndarray, gains: np.ndarray, make,
                           repeats: int) -> tuple[float, float, float]:
    """Mean reward (and its spread over repeats) and retrieval rate of the probe under repeated 5-fold CV."""
    rewards, rates = [], []
    for repeat in range(repeats):
        total, retrieved = 0.0, 0
        for train, test in KFold(5, shuffle=True, random_state=repeat).split(features):
            predicted = np.stack([make().fit(features[train], gains[train, o]).predict(features[test])
                                  for o in range(gains.shape[1])], axis=1)
            best, take = predicted.argmax(1), predicted.max(1) > 0
            total += (answer_now[test] + np.where(take, gains[test, best], 0.0)).sum()
            retrieved += int(take.sum())
        rewards.append(total / len(features))
        rates.append(retrieved / len(features))
    return float(np.mean(rewards)), float(np.std(rewards)), float(np.mean(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("split")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--llm", default="gemma-3-270m")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.split == "test":
        parser.error("the probe is for choosing features; run it on a training split, not on test")
    env = gym.make("SmartRAG-v0", dataset=args.dataset, split=args.split, llm=args.llm, limit=args.limit)
    answer_now, gains, observations, (no_answer, retrieved) = reward_table(env)
    n = len(answer_now)
    print(f"{args.dataset} {args.split}: {n} questions; the reader gave no answer (empty or a bare 'Answer:' line) "
          f"in {no_answer} of {retrieved} retrieved states")
    print(f"  never-retrieve                 {answer_now.mean():.3f}")
    for o, name in enumerate(QUERY_OPTIONS):
        print(f"  always-retrieve:{name:15s}{(answer_now + gains[:, o]).mean():.3f}"
              f"   (retrieval helps on {np.mean(gains[:, o] > 0):.1%} of questions)")
    print(f"  oracle (at most one retrieval) {(answer_now + np.maximum(gains.max(1), 0)).mean():.3f}")
    question = QUERY_OPTIONS.index("question")
    supported = observations["closed_book_support"][:, question] > 0
    print(f"  closed-book guess in the question's top passages on {supported.mean():.1%} of questions; mean gain of "
          f"retrieving with the question there {gains[supported, question].mean():+.3f}, "
          f"elsewhere {gains[~supported, question].mean():+.3f}")
    for key_set, keys in KEY_SETS.items():
        features = np.hstack([observations[k] for k in keys])
        for name, make in REGRESSORS.items():
            mean, spread, rate = cross_validated_reward(features, answer_now, gains, make, args.repeats)
            print(f"  probe [{key_set}; {name}]: {mean:.3f} ± {spread:.3f}, retrieves on {rate:.1%}")


if __name__ == "__main__":
    main()
