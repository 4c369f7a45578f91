"""Evaluation runs: an agent over every question of a split, metrics and per-question records.

The LLM work is batched across questions through the environment's own
``outcomes`` (the code ``step`` uses), so a run's numbers are exactly what
``env.step`` would give, one question at a time, only faster.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np

from ragenv.errors import ConfigError
from ragenv.metrics import ir_metrics


@dataclass
class EvalConfig:
    env: str = "RAGRetrieval-v0"
    agent: str = "bm25"
    dataset: str = "nq"
    split: str = "test"
    limit: int | None = None
    llm: str = "gemma-3-270m"
    seed: int = 0
    generate_answers: bool = True
    data_dir: str | None = None
    env_options: dict = field(default_factory=dict)


def make_env(config: EvalConfig, features: bool = False) -> gym.Env:
    import ragenv  # noqa: F401  (registers the environments)

    if config.env not in gym.registry or not config.env.startswith("RAG"):
        raise ConfigError(f"unknown environment {config.env!r}: use RAGRetrieval-v0")
    return gym.make(
        config.env, dataset=config.dataset, split=config.split, llm=config.llm, limit=config.limit,
        generate_answers=config.generate_answers, data_dir=config.data_dir, features=features, diagnostics=True, **config.env_options,
    )


def _mean(values) -> float:
    finite = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(finite)) if finite else float("nan")


def run_episodes(env: gym.Env, agent, *, batch_size: int = 16, progress: bool = True) -> list[dict]:
    """Per-question records of ``agent`` on every question of the environment's split."""
    from rich.progress import Progress

    base = env.unwrapped
    questions = base.questions
    records: list[dict] = []
    with Progress(disable=not progress, transient=True) as bar:
        choose = bar.add_task(f"{getattr(agent, 'name', 'agent')}: choosing passages", total=len(questions))
        requests = []
        for question in questions:
            observation, info = env.reset(options={"question_id": question.id})
            rows = base.validate_action(agent.act(observation, info))
            requests.append((question, rows))
            bar.advance(choose)
        score = bar.add_task(f"{getattr(agent, 'name', 'agent')}: frozen LLM", total=len(questions))
        for start in range(0, len(requests), batch_size):
            chunk = requests[start:start + batch_size]
            for (question, rows), outcome in zip(chunk, base.outcomes(chunk)):
                records.append({"question": question.question, "answers": list(question.answers),
                                "gold_passage_ids": list(question.gold_passage_ids), "rows": rows,
                                "reward": outcome.reward, **outcome.info})
            bar.advance(score, len(chunk))
    return records


def summarize(records: list[dict], k: int) -> dict:
    """Mean metrics of per-question records; IR metrics by ir-measures."""
    runs = {r["question_id"]: r["passage_ids"] for r in records}
    qrels = {r["question_id"]: r["gold_passage_ids"] for r in records}
    ir = ir_metrics(runs, qrels, k)
    metrics = {
        "reward": _mean(r["reward"] for r in records),
        "answer_logprob": _mean(r["answer_logprob"] for r in records),
        "closed_book_logprob": _mean(r["closed_book_logprob"] for r in records),
        "logprob_gain": _mean(r["logprob_gain"] for r in records),
        "em": _mean(r.get("em") for r in records),
        "f1": _mean(r.get("f1") for r in records),
        "accuracy": _mean(r.get("accuracy") for r in records),
        f"hit@{k}": ir.get(f"hit@{k}", float("nan")),
        f"recall@{k}": ir.get(f"recall@{k}", float("nan")),
        f"ndcg@{k}": ir.get(f"ndcg@{k}", float("nan")),
        "retrievals_per_question": _mean(float(r["num_passages"] > 0) for r in records),
        "passages_per_question": _mean(r["num_passages"] for r in records),
        "cache_hit_rate": _mean(float(r["cache_hit"]) for r in records),
    }
    return metrics


def evaluate(config: EvalConfig, env: gym.Env | None = None, agent=None, *, progress: bool = True) -> dict:
    """Run one agent on one split and return the result document (see the README for its fields)."""
    from ragenv.registry import check_agent_name, make_agent

    started = time.perf_counter()
    check_agent_name(config.agent, config.env)  # fail before any data or model is loaded
    env = env if env is not None else make_env(config)
    agent = agent if agent is not None else make_agent(config.agent, env, seed=config.seed)
    base = env.unwrapped
    stats_before = asdict(base.scorer.stats)
    records = run_episodes(env, agent, progress=progress)
    llm_work = {key: value - stats_before[key] for key, value in asdict(base.scorer.stats).items()}
    metrics = summarize(records, base.k)
    metrics["seconds"] = time.perf_counter() - started
    return {
        "env": config.env,
        "agent": config.agent,
        "dataset": config.dataset,
        "split": config.split,
        "dataset_fingerprint": base.dataset.split_fingerprint(config.split),  # question ids + corpus (submissions check it)
        "llm": config.llm,
        "llm_fingerprint": base.scorer.fingerprint,
        "prompt_version": base.scorer.describe()["prompt_version"],
        "n": len(records),
        "config": {k: v for k, v in asdict(config).items() if k not in ("agent",)},
        "env_options": {"k": base.k, "reward": base.reward_name, "cost_per_passage": base.cost_per_passage,
                        "first_stage": base.first_stage_name, "num_candidates": base.num_candidates},
        "metrics": metrics,
        "llm_work": llm_work,  # forward passes, sequences and model loads this run needed (0 when fully cached)
        "per_question": records,
    }


def write_json(document: dict, path: str | Path) -> None:
    """Write atomically: a crash never leaves half a result file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1, ensure_ascii=False, allow_nan=True))
    tmp.replace(path)
