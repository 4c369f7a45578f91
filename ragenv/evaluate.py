"""Evaluation runs: an agent over every question of a split, metrics and per-question records.

One-step environments (RAGRetrieval-v0): the LLM work is batched across questions
through the environment's own ``outcomes`` (the code ``step`` uses), so a run's
numbers are exactly what ``env.step`` would give, one question at a time, only faster.

Multi-step environments (``env.multi_step``, SmartRAG-v0): every episode runs
through ``env.reset``/``env.step``; the environment's ``precompute`` first fills the
cache for all questions in batches, so the steps only read it. The environment
provides each episode's record (``info["episode_record"]`` at termination).

:func:`summarize` reports the metrics the records carry.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np

from ragenv.atomic import atomic_write_json
from ragenv.errors import ConfigError, RagenvError
from ragenv.metrics import ir_metrics
from ragenv.spec import RunSpec

if TYPE_CHECKING:
    from ragenv.envs import RAGRetrievalEnv
    from ragenv.journal import RunJournal


@dataclass(frozen=True)
class EvalConfig(RunSpec):
    """An evaluation run: the run spec, the agent (see ``ragenv agents``) and its seed."""

    agent: str = "bm25"
    seed: int = 0
    generate_answers: bool = True


def make_env(config: EvalConfig, features: bool | None = None) -> gym.Env:
    """The environment of an evaluation run (``features``: None = what the agent needs)."""
    import ragenv  # noqa: F401  (registers the environments)
    from ragenv.registry import ENVIRONMENTS, agent_needs_features, env_family

    if config.env not in gym.registry or config.env not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment {config.env!r}: use one of {', '.join(ENVIRONMENTS)}")
    if env_family(config.env) == "retrieval":
        return gym.make(config.env, **config.make_kwargs(generate_answers=config.generate_answers,
                                                         features=bool(features), diagnostics=True))
    if features is None:
        features = agent_needs_features(config.agent, config.env)
    return gym.make(config.env, **config.make_kwargs(features=features))


def env_options_for(env_id: str, *, k: int | None = None, top_n: int | None = None, reward: str | None = None,
                    cost_per_passage: float | None = None, alpha: float | None = None,
                    max_retrievals: int | None = None) -> dict:
    """Environment keyword arguments from CLI-style options (None = the environment's default).

    Each option has the environment's own name: ``k`` is RAGRetrieval-v0's passages per question,
    ``top_n`` SmartRAG-v0's passages per retrieval; one given to the other environment is an error.
    """
    from ragenv.registry import env_family

    family = env_family(env_id)
    if family == "retrieval":
        if alpha is not None or max_retrievals is not None or top_n is not None:
            raise ConfigError(f"--alpha, --max-retrievals and --top-n apply to SmartRAG-v0, not {env_id}; "
                              "use --k and --cost-per-passage")
        given = {"k": k, "reward": reward, "cost_per_passage": cost_per_passage}
    else:
        if cost_per_passage is not None or k is not None:
            raise ConfigError(f"--k and --cost-per-passage apply to RAGRetrieval-v0; {env_id} takes --top-n "
                              "(passages per retrieval) and charges --alpha per retrieval")
        given = {"top_n": top_n, "reward": reward, "alpha": alpha, "max_retrievals": max_retrievals}
    return {key: value for key, value in given.items() if value is not None}


def _mean(values) -> float:
    finite = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(finite)) if finite else float("nan")


def run_episodes(env: gym.Env, agent, *, batch_size: int = 16, progress: bool = True,
                 journal: "RunJournal | None" = None, resumed: list[dict] | None = None) -> list[dict]:
    """Per-question records of ``agent`` on every question of the environment's split.

    ``journal``: append each finished batch of records to it (see :mod:`ragenv.journal`);
    ``resumed``: records a killed attempt of the same run had finished, reused as they are.
    """
    from rich.progress import Progress

    if getattr(env.unwrapped, "multi_step", False):
        return run_multi_step_episodes(env, agent, progress=progress, journal=journal, resumed=resumed)
    base = cast("RAGRetrievalEnv", env.unwrapped)  # one-step: the retrieval environment
    questions = base.questions
    done = {r["question_id"]: r for r in resumed or []}
    records: list[dict] = []
    with Progress(disable=not progress, transient=True) as bar:
        choose = bar.add_task(f"{getattr(agent, 'name', 'agent')}: choosing passages", total=len(questions))
        requests = []
        for question in questions:  # every question, finished or not: a stochastic agent's stream stays the same
            observation, info = env.reset(options={"question_id": question.id})
            rows = base.validate_action(agent.act(observation, info))
            requests.append((question, rows))
            bar.advance(choose)
        score = bar.add_task(f"{getattr(agent, 'name', 'agent')}: frozen LLM", total=len(questions))
        pending = []
        for question, rows in requests:
            record = done.get(question.id)
            if record is not None and list(record["rows"]) == list(rows):
                records.append(record)
            else:
                pending.append((question, rows))
        bar.advance(score, len(records))
        for start in range(0, len(pending), batch_size):
            chunk = pending[start:start + batch_size]
            new = [{"gold_passage_ids": list(question.gold_passage_ids), "rows": list(rows),
                    "reward": outcome.reward, **outcome.info}
                   for (question, rows), outcome in zip(chunk, base.outcomes(chunk))]
            if journal is not None:
                journal.append(new)
            records.extend(new)
            bar.advance(score, len(chunk))
    order = {q.id: i for i, q in enumerate(questions)}
    return sorted(records, key=lambda r: order[r["question_id"]])


def run_multi_step_episodes(env: gym.Env, agent, *, progress: bool = True, precompute: bool = True,
                            journal: "RunJournal | None" = None, resumed: list[dict] | None = None) -> list[dict]:
    """One reset/step episode per question; the record is the environment's ``episode_record``.

    ``precompute``: first fill the cache for every question in batches (``env.precompute``,
    where the environment has one: SmartRAGText-v0 asks the frozen LLM nothing), so the
    episodes' LLM calls are cache reads. With a ``journal``, each precomputed batch is
    noted, and a resumed run precomputes only the questions the killed attempt had not
    finished; the episodes (cache reads) then run for every question, so that a stochastic
    agent draws the same stream as in an uninterrupted run.
    """
    from rich.progress import Progress

    base: Any = env.unwrapped  # a multi-step environment (SmartRAG-v0 or SmartRAGText-v0)
    name = getattr(agent, "name", "agent")
    if precompute and hasattr(base, "precompute"):
        finished = {qid for r in resumed or [] for qid in r.get("precomputed", [])}
        remaining = [q for q in base.questions if q.id not in finished]
        note = (lambda chunk: journal.append([{"precomputed": [q.id for q in chunk]}])) if journal is not None else None
        base.precompute(remaining, progress=progress, on_batch=note)
    records: list[dict] = []
    limit = getattr(base, "max_retrievals", 0) + 1  # the longest legal episode
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{name}: episodes", total=len(base.questions))
        for question in base.questions:
            observation, info = env.reset(options={"question_id": question.id})
            ret, terminated, truncated, steps = 0.0, False, False, 0
            while not (terminated or truncated):
                if steps >= limit:
                    raise RagenvError(f"episode of {question.id} did not end after {steps} steps (quota {limit - 1})")
                observation, reward, terminated, truncated, info = env.step(agent.act(observation, info))
                ret, steps = ret + float(reward), steps + 1
            records.append({**info["episode_record"], "reward": ret, "steps": steps})
            bar.advance(task)
    return records


def summarize(records: list[dict], k: int | None = None) -> dict:
    """Mean metrics of per-question records, for the fields the records carry; IR metrics by ir-measures.

    Always: ``reward``, ``em``, ``f1``, ``accuracy`` (NaN where answers were not generated).
    One-step retrieval records (``num_passages``): the log-probabilities, ``hit@k``,
    ``recall@k``, ``ndcg@k``, ``retrievals_per_question`` (share using any passage) and
    ``passages_per_question``. Multi-step records (``num_retrievals``):
    ``retrievals_per_question`` (mean retrievals) and ``answered_without_retrieval``
    (share of questions). ``questions_without_gold`` when some questions have no gold passage in
    the corpus: the IR metrics are over the others. ``cache_hit_rate`` when records carry ``cache_hit``.
    """
    present = set().union(*(r.keys() for r in records)) if records else set()
    metrics = {"reward": _mean(r["reward"] for r in records)}
    for name in ("answer_logprob", "closed_book_logprob", "logprob_gain"):
        if name in present:
            metrics[name] = _mean(r.get(name) for r in records)
    for name in ("em", "f1", "accuracy"):
        metrics[name] = _mean(r.get(name) for r in records)
    if "num_passages" in present and k is not None:
        runs = {r["question_id"]: r["passage_ids"] for r in records}
        qrels = {r["question_id"]: r["gold_passage_ids"] for r in records}
        ir = ir_metrics(runs, qrels, k)
        for name in (f"hit@{k}", f"recall@{k}", f"ndcg@{k}"):
            metrics[name] = ir.get(name, float("nan"))
        metrics["retrievals_per_question"] = _mean(float(r["num_passages"] > 0) for r in records)
        metrics["passages_per_question"] = _mean(r["num_passages"] for r in records)
    if "num_retrievals" in present:
        metrics["retrievals_per_question"] = _mean(r["num_retrievals"] for r in records)
        metrics["answered_without_retrieval"] = _mean(float(r["num_retrievals"] == 0) for r in records)
    if "gold_passage_ids" in present:  # a corpus may lack some questions' gold passages (corpus=): say so
        without_gold = sum(1 for r in records if not r.get("gold_passage_ids"))
        if without_gold:
            metrics["questions_without_gold"] = without_gold
    if "cache_hit" in present:
        metrics["cache_hit_rate"] = _mean(float(r["cache_hit"]) for r in records)
    return metrics


def run_identity(config: EvalConfig, env: gym.Env) -> dict:
    """Everything that determines a run's results (the key of its journal)."""
    from ragenv.registry import agent_fingerprint

    base: Any = env.unwrapped  # either kind of environment
    return {"config": asdict(config), "env_options": base.env_options,
            "dataset_fingerprint": base.dataset.split_fingerprint(config.split),
            "llm_fingerprint": base.scorer.fingerprint, "prompt_version": base.scorer.describe()["prompt_version"],
            "agent_fingerprint": agent_fingerprint(config.agent)}


TEXT_FIELDS = ("question", "answers")  # the dataset's own texts: in per-question records only on request


def with_texts(records: list[dict], questions, include: bool) -> list[dict]:
    """Per-question records without the question text and gold answers, or (``include``) with them.

    By default a result file names each question by its ragenv id only, so that sharing or
    committing it does not copy the dataset; ``include`` is for local error analysis.
    """
    by_id = {q.id: q for q in questions}
    kept = [{k: v for k, v in r.items() if k not in TEXT_FIELDS} for r in records]
    if not include:
        return kept
    return [{"question_id": r["question_id"], "question": by_id[r["question_id"]].question,
             "answers": list(by_id[r["question_id"]].answers), **r} for r in kept]


def evaluate(config: EvalConfig, env: gym.Env | None = None, agent=None, *, progress: bool = True,
             resume: bool = True, log=None, batch_size: int = 16, texts: bool = False) -> dict:
    """Run one agent on one split and return the result document (see the README for its fields).

    ``resume``: keep a journal of finished questions (``<cache>/journals``); if a previous run
    with the same identity was killed, reuse what it finished and record that in
    ``document["resumed"]``. The journal is removed once the run completes. ``log``: a
    callable given one line when the run resumes. ``batch_size``: questions per LLM batch
    (the unit a kill can lose). ``texts``: also copy each question's text and gold answers into
    its record (:func:`with_texts`).
    """
    from ragenv.journal import RunJournal
    from ragenv.provenance import provenance
    from ragenv.registry import check_agent_name, make_agent

    started = time.perf_counter()
    check_agent_name(config.agent, config.env)  # fail before any data or model is loaded
    env = env if env is not None else make_env(config)
    agent = agent if agent is not None else make_agent(config.agent, env, seed=config.seed)
    base: Any = env.unwrapped  # either kind of environment
    journal = RunJournal("evaluate", run_identity(config, env)) if resume else None
    resumed = journal.load() if journal is not None else []
    if journal is not None:
        journal.start(resumed)
    if resumed and log is not None:
        assert journal is not None  # only a journal resumes
        log(f"resuming an interrupted run: {_resumed_questions(resumed)} of {len(base.questions)} questions were "
            f"already done ({journal.path})")
    stats_before = asdict(base.scorer.stats)
    records = run_episodes(env, agent, batch_size=batch_size, progress=progress, journal=journal, resumed=resumed)
    llm_work = {key: value - stats_before[key] for key, value in asdict(base.scorer.stats).items()}
    metrics = summarize(records, getattr(base, "k", None))
    metrics["seconds"] = time.perf_counter() - started
    document = {
        "env": config.env,
        "agent": config.agent,
        "dataset": config.dataset,
        "split": config.split,
        # question ids + corpus (submissions check it)
        "dataset_fingerprint": base.dataset.split_fingerprint(config.split),
        "llm": config.llm,
        "llm_fingerprint": base.scorer.fingerprint,
        "prompt_version": base.scorer.describe()["prompt_version"],
        "numerics": base.scorer.numerics.describe(),  # dtype, device, hardware; canonical or not
        "provenance": provenance(base.scorer.numerics),
        "n": len(records),
        "config": {k: v for k, v in asdict(config).items() if k not in ("agent",)},
        "env_options": base.env_options,
        "metrics": metrics,
        "llm_work": llm_work,  # forward passes, sequences and model loads this run needed (0 when fully cached)
        "per_question": with_texts(records, base.questions, texts),
    }
    if resumed:
        assert journal is not None  # only a journal resumes
        document["resumed"] = {"journal": str(journal.path), "units": len(resumed),
                               "questions": _resumed_questions(resumed)}
    if journal is not None:
        journal.finish()
    return document


def _resumed_questions(resumed: list[dict]) -> int:
    """Questions a killed attempt had finished (evaluated, or precomputed for multi-step runs)."""
    return sum(len(r["precomputed"]) if "precomputed" in r else 1 for r in resumed)


def write_json(document: dict, path: str | Path) -> None:
    """Write atomically: a crash never leaves half a result file."""
    atomic_write_json(path, document)
