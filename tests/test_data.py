"""The public question sets as ``ragenv.data`` reads them: ragenv's question ids, and splits that never move."""
from __future__ import annotations

import re

import pytest

# The splits' sizes as docs/data.md states them (train, dev, test).
SPLIT_SIZES = {"nq": (1989, 297, 369), "hotpotqa": (300, 300, 500), "squad": (8009, 1027, 1534)}
ID_PATTERN = {"nq": r"nq-\d{5}", "hotpotqa": r"hotpotqa-(train|dev|test)-\d{5}", "squad": r"squad-\d{5}"}


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(SPLIT_SIZES))
def test_public_question_ids_are_ragenvs_own_and_the_splits_keep_their_sizes(name):
    from ragenv.data import load_dataset

    dataset = load_dataset(name)
    questions = [q for split in ("train", "dev", "test") for q in dataset.split(split)]
    assert tuple(len(dataset.split(split)) for split in ("train", "dev", "test")) == SPLIT_SIZES[name]
    assert len({q.id for q in questions}) == len(questions)  # unique
    assert all(re.fullmatch(ID_PATTERN[name], q.id) for q in questions)  # never the source's own ids
    if name == "hotpotqa":  # the id names the split's file and line
        assert all(q.id.startswith(f"hotpotqa-{q.split}-") for q in questions)
        assert dataset.split("test")[0].id == "hotpotqa-test-00000"
