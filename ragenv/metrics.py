"""Answer metrics (SQuAD-style EM/F1, answer-in-output accuracy) and IR metrics (via ir-measures).

Answer normalisation is the SQuAD/DPR one: lower-case, drop punctuation and the
articles a/an/the, collapse whitespace. Each metric takes the maximum over the gold
aliases.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from typing import Iterable, Mapping, Sequence

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in answers))


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    pred_tokens = normalize_answer(prediction).split()
    best = 0.0
    for answer in answers:
        gold_tokens = normalize_answer(answer).split()
        common = Counter(pred_tokens) & Counter(gold_tokens)
        overlap = sum(common.values())
        if overlap == 0:
            continue
        precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def answer_in_output(prediction: str, answers: Sequence[str]) -> float:
    """Accuracy as in SmartRAG and the DESIGN figures: a normalised gold alias occurs in the output."""
    pred = f" {normalize_answer(prediction)} "
    return float(any(normalize_answer(a) and f" {normalize_answer(a)} " in pred for a in answers))


def hit_at_k(selected: Iterable[str], gold: Iterable[str]) -> float:
    """1 if any gold passage is among the selected ones (NaN when the question has no gold passage)."""
    gold = set(gold)
    if not gold:
        return float("nan")
    return float(bool(gold & set(selected)))


def ir_metrics(runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Sequence[str]], k: int) -> dict[str, float]:
    """Success@k (hit@k), Recall@k, nDCG@k and MRR@k of ranked passage lists, computed by ir-measures.

    ``runs`` maps a question id to its passage ids in rank order; ``qrels`` to its gold ids.
    Questions without gold passages are left out, as TREC tools do.
    """
    import ir_measures
    from ir_measures import RR, R, Success, nDCG

    judged = {q: g for q, g in qrels.items() if g}
    if not judged:
        return {}
    qrel_rows = [ir_measures.Qrel(q, d, 1) for q, gold in judged.items() for d in gold]
    run_rows = [
        ir_measures.ScoredDoc(q, d, float(len(ranked) - rank))
        for q, ranked in runs.items() if q in judged
        for rank, d in enumerate(dict.fromkeys(ranked))
    ]
    measures = {f"hit@{k}": Success @ k, f"recall@{k}": R @ k, f"ndcg@{k}": nDCG @ k, f"mrr@{k}": RR @ k}
    values = ir_measures.calc_aggregate(list(measures.values()), qrel_rows, run_rows)
    # ir-measures averages over the questions present in the run; count the missing ones as zero.
    scale = len([q for q in judged if q in runs]) / len(judged)
    return {name: float(values.get(m, 0.0)) * scale for name, m in measures.items()}


def paired_bootstrap(a: dict[str, float], b: dict[str, float], *, confidence: float = 0.95, resamples: int = 10_000,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a[q] - b[q]`` over the questions both hold, with a paired bootstrap confidence interval.

    Questions are resampled with replacement (scipy.stats.bootstrap, percentile method), so
    the interval reflects how much the difference depends on which questions were asked.
    """
    import numpy as np
    from scipy.stats import bootstrap

    common = [q for q in a if q in b]
    if len(common) < 2:
        raise ValueError("a paired bootstrap needs at least two questions in common")
    diff = np.array([a[q] - b[q] for q in common], dtype=np.float64)
    if np.all(diff == diff[0]):
        return float(diff[0]), float(diff[0]), float(diff[0])
    result = bootstrap((diff,), np.mean, confidence_level=confidence, n_resamples=resamples, method="percentile",
                       random_state=np.random.default_rng(seed))
    return float(diff.mean()), float(result.confidence_interval.low), float(result.confidence_interval.high)
