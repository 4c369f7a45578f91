"""Mean reward by the rank of the first gold passage in an evaluation's top-k.

Usage: .venv/bin/python experiments/reward_by_gold_rank.py runs/r3eval-nq-dev-dense.json [more.json ...]

Reads the ``per_question`` records that ``ragenv evaluate --output`` writes (no model, no data)
and prints, per file, the share of questions whose first gold passage sits at rank 1..k or is
absent, with their mean reward. It shows how much of RAGRetrieval-v0's reward a re-ranker can
still move: if nearly every question already has its gold at rank 1, little is left. The last
line is a rough bound: the mean reward if every question got the rank-1 questions' mean.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from rich.console import Console
from rich.table import Table


def reward_by_gold_rank(records: list[dict]) -> dict[str, list[float]]:
    """Rewards grouped by ``"1"``..``"k"`` (first gold passage's rank) or ``"absent"``."""
    groups: dict[str, list[float]] = {}
    for record in records:
        gold = set(record["gold_passage_ids"])
        rank = next((str(i + 1) for i, pid in enumerate(record["passage_ids"]) if pid in gold), "absent")
        groups.setdefault(rank, []).append(float(record["reward"]))
    return dict(sorted(groups.items(), key=lambda item: (item[0] == "absent", item[0])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="JSON files written by `ragenv evaluate --output`")
    args = parser.parse_args()
    console = Console(width=120)
    for path in args.files:
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
        records = result["per_question"]
        groups = reward_by_gold_rank(records)
        table = Table(title=f"{path}: {result['agent']} on {result['dataset']} {result['split']} "
                            f"({len(records)} questions)")
        for name in ("first gold at rank", "share of questions", "mean reward"):
            table.add_column(name)
        for rank, rewards in groups.items():
            table.add_row(rank, f"{len(rewards) / len(records):.3f}", f"{np.mean(rewards):.3f}")
        console.print(table)
        mean = np.mean([r["reward"] for r in records])
        if "1" in groups:
            console.print(f"mean reward {mean:.3f}; with every question at the rank-1 mean {np.mean(groups['1']):.3f}: "
                          f"{np.mean(groups['1']) - mean:+.3f}")


if __name__ == "__main__":
    main()
