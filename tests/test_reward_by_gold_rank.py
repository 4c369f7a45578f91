"""experiments/reward_by_gold_rank.py: rewards are grouped by the first gold passage's rank, absent last."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # model-free: the fast tier

REPO = Path(__file__).resolve().parents[1]

SCRIPT = REPO / "experiments" / "reward_by_gold_rank.py"


def record(passage_ids, gold, reward):
    return {"passage_ids": passage_ids, "gold_passage_ids": gold, "reward": reward}


def test_groups_by_first_gold_rank_and_prints_the_rank1_bound(tmp_path):
    records = [record(["g", "a", "b"], ["g"], 2.0), record(["a", "g", "g2"], ["g", "g2"], 1.0),
               record(["a", "b", "c"], ["g"], 0.0), record(["g", "a", "b"], ["g"], 4.0)]
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"agent": "dense", "dataset": "nq", "split": "dev", "per_question": records}))
    spec = importlib.util.spec_from_file_location("reward_by_gold_rank", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.reward_by_gold_rank(records) == {"1": [2.0, 4.0], "2": [1.0], "absent": [0.0]}
    out = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, check=True).stdout
    assert "mean reward 1.750; with every question at the rank-1 mean 3.000: +1.250" in out
    assert "0.500" in out and "absent" in out
