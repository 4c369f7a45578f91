"""Paired bootstrap intervals for the difference between two agents on the same questions."""
from __future__ import annotations

import numpy as np
import pytest

from ragenv.metrics import paired_bootstrap

pytestmark = pytest.mark.unit  # model-free: the fast tier


def test_paired_bootstrap_brackets_the_mean_and_pairs_by_question():
    rng = np.random.default_rng(1)
    base = {f"q{i}": float(v) for i, v in enumerate(rng.normal(size=400))}
    better = {q: v + 0.3 + 0.1 * rng.normal() for q, v in base.items()}  # +0.3 on every question, small noise
    mean, low, high = paired_bootstrap(better, base)
    assert low < mean < high and 0.28 < low and high < 0.32  # pairing removes the large per-question spread
    mean, low, high = paired_bootstrap(base, {q: v for q, v in list(base.items())[:200]})
    assert mean == low == high == 0.0  # only common questions count; identical rewards give a zero-width interval


def test_paired_bootstrap_needs_common_questions():
    with pytest.raises(ValueError, match="two questions"):
        paired_bootstrap({"a": 1.0}, {"b": 1.0})
