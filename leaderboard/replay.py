"""The replay evaluator: every leaderboard number is recomputed from the submitted actions.

A submission is checked against the frozen environment it names (:func:`check_against_env`:
data fingerprint, LLM fingerprint and prompt version, environment options, the exact
set of question ids, every passage id) and its actions are then replayed through the
environment itself, by the same :func:`ragenv.evaluate.run_episodes` (RAGRetrieval-v0: its
``validate_action`` and ``outcomes``) or :func:`ragenv.evaluate.run_multi_step_episodes`
(SmartRAG-v0: ``reset``/``step`` with the submitted query options, then ANSWER) and
:func:`ragenv.evaluate.summarize` that ``ragenv evaluate`` uses. So a replayed agent scores
exactly what it scored when it ran, and a submission cannot claim a number it did not earn: ``reported_metrics`` is
never read.

Replays run in the canonical numeric setting (float32; :mod:`ragenv.numerics`) whatever
the machine and whatever setting the submission records; another setting only when the
caller asks for it (``dtype=``, ``--dtype``), and the entry then says it is non-canonical.
A submission's actions therefore replay anywhere; only another model or prompt version
is refused.

A submission chooses names, not code: the dataset must be a named question set and
the LLM a named model, unless ``allow_local=True`` (``--allow-local``) lets it name a
local dataset folder or model file, for a user replaying their own file. Hugging Face
ids are always refused: replaying never downloads anything a submission names.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict
from pathlib import Path

import gymnasium as gym
import numpy as np

from ragenv.errors import ConfigError, RagenvError, SubmissionError
from ragenv.leaderboard.submission import (
    REPLAYABLE_ENVS,
    RetrievalEnvOptions,
    RetrievalSubmission,
    SmartRAGEnvOptions,
    SmartRAGSubmission,
    _show,
    read_submission,
    to_json,
)
from ragenv.numerics import CANONICAL_DTYPE

ENTRY_FORMAT = 2  # 2: numerics (the replay's setting) and provenance
TELEMETRY = ("seconds", "cache_hit_rate")  # facts about a run, not about the agent: kept out of entry metrics


class ReplayAgent:
    """Acts by looking up the submitted rows for the question the environment just reset to."""

    def __init__(self, rows_by_question: dict[str, list[int]], k: int, name: str = "replay"):
        self.rows_by_question, self.k, self.name = rows_by_question, k, name

    def act(self, observation, info) -> np.ndarray:
        rows = self.rows_by_question[info["question_id"]]
        return np.array(rows + [-1] * (self.k - len(rows)), dtype=np.int64)


class TraceReplayAgent:
    """SmartRAG-v0: retrieves with the submitted query options of the current question, in order, then answers."""

    def __init__(self, traces: dict[str, tuple[int, ...]], name: str = "replay"):
        self.traces, self.name = traces, name

    def act(self, observation, info) -> int:
        from ragenv.envs.smartrag.env import ANSWER

        trace, done = self.traces[info["question_id"]], info["num_retrievals"]
        return 1 + trace[done] if done < len(trace) else ANSWER


Submission = RetrievalSubmission | SmartRAGSubmission


def _check_names(sub: Submission, source: str, allow_local: bool) -> None:
    """Refuse data and models a submission may not make us read or fetch."""
    from ragenv.data import QUESTION_SETS, SPLITS
    from ragenv.llm import KNOWN_MODELS

    name = sub.dataset.name
    if name in QUESTION_SETS:
        if sub.dataset.split not in SPLITS + ("all",):
            raise SubmissionError(f"{source}: field dataset.split: expected one of {', '.join(SPLITS + ('all',))}, "
                                  f"found {_show(sub.dataset.split)}")
    elif not (allow_local and Path(name).expanduser().is_dir()):
        hint = ("; it names a local folder: replay it with --allow-local only if you trust the file"
                if not allow_local else " (no such folder here)")
        raise SubmissionError(f"{source}: field dataset.name: expected one of {', '.join(QUESTION_SETS)}, "
                              f"found {_show(name)}{hint}")
    llm = sub.llm.name
    if llm not in KNOWN_MODELS:
        local = Path(llm).expanduser()
        is_local = ((local.is_file() and local.suffix == ".gguf")
                    or (local.is_dir() and (local / "config.json").exists()))
        if not (allow_local and is_local):
            hint = ("; a local model needs --allow-local" if is_local and not allow_local
                    else "; the leaderboard never downloads a model a submission names")
            raise SubmissionError(f"{source}: field llm.name: expected one of {', '.join(KNOWN_MODELS)}, "
                                  f"found {_show(llm)}{hint}")


def replay_config(sub: Submission, data_dir: str | None = None, dtype: str | None = None,
                  device: str = "auto"):
    """The :class:`~ragenv.evaluate.EvalConfig` that replays a submission (``dtype`` None: canonical)."""
    from ragenv.evaluate import EvalConfig

    return EvalConfig(env=sub.env_id, agent="replay", dataset=sub.dataset.name, split=sub.dataset.split,
                      limit=sub.dataset.limit, llm=sub.llm.name, generate_answers=True, data_dir=data_dir,
                      dtype=dtype or CANONICAL_DTYPE, device=device, env_options=sub.env_options.model_dump())


def check_setting(scorer, requested_dtype: str | None, source: str = "submission") -> None:
    """Refuse a non-canonical replay the caller did not ask for (one line naming both settings)."""
    setting = scorer.numerics
    if setting.canonical or requested_dtype == setting.dtype:
        return
    raise ConfigError(f"{source}: the replaying environment computes in {setting.dtype}, but replays run in the "
                      f"canonical {CANONICAL_DTYPE} unless asked otherwise: pass dtype={setting.dtype!r} "
                      f"(--dtype {setting.dtype}) to replay in {setting.dtype} on purpose, or use a {CANONICAL_DTYPE} "
                      "environment")


def check_against_env(sub: Submission, env: gym.Env, source: str = "submission") -> dict[str, list[int]]:
    """Corpus rows per question id (RAGRetrieval-v0), or query option indices per question id
    (SmartRAG-v0), after every check that needs the environment; SubmissionError otherwise."""
    base = env.unwrapped
    if isinstance(sub, RetrievalSubmission) and not (base.generate_answers and base.diagnostics):
        raise ConfigError("replay needs an environment made by ragenv.evaluate.make_env (answers and diagnostics on)")
    spec_id = getattr(getattr(base, "spec", None), "id", None)  # the base env's spec: wrappers deep-copy theirs
    if spec_id is not None and spec_id != sub.env_id:
        raise SubmissionError(f"{source}: field env_id: expected {spec_id} (the replaying environment), "
                              f"found {_show(sub.env_id)}")
    if isinstance(sub, SmartRAGSubmission) and getattr(base, "invalid_action", "raise") != "raise":
        raise ConfigError("replay needs a SmartRAG-v0 environment with invalid_action='raise' (the default)")
    options = RetrievalEnvOptions if isinstance(sub, RetrievalSubmission) else SmartRAGEnvOptions
    for key in options.model_fields:
        expected, found = base.env_options[key], getattr(sub.env_options, key)
        if expected != found:
            raise SubmissionError(f"{source}: field env_options.{key}: expected {expected!r} (the replaying "
                                  f"environment), found {found!r}")

    data = base.dataset
    if base.split_name != sub.dataset.split:
        raise SubmissionError(f"{source}: field dataset.split: expected {base.split_name!r}, "
                              f"found {_show(sub.dataset.split)}")
    fingerprint = data.split_fingerprint(base.split_name)
    if sub.dataset.fingerprint != fingerprint:
        raise SubmissionError(
            f"{source}: field dataset.fingerprint: expected {fingerprint[:16]}... "
            f"({sub.dataset.name}/{base.split_name} here: its question ids and corpus), "
            f"found {sub.dataset.fingerprint[:16]}...; the submission was made on other data: "
            "re-run the agent on the current data")
    split_size = len(data.split(base.split_name))
    if sub.dataset.limit is not None and sub.dataset.limit > split_size:
        raise SubmissionError(f"{source}: field dataset.limit: expected at most {split_size} (questions in "
                              f"{sub.dataset.name}/{base.split_name}), found {sub.dataset.limit}")
    wanted = split_size if sub.dataset.limit is None else sub.dataset.limit
    if wanted != len(base.questions):
        here = None if len(base.questions) == split_size else len(base.questions)
        raise SubmissionError(f"{source}: field dataset.limit: expected {here} (the replaying environment), "
                              f"found {sub.dataset.limit}")

    scorer = base.scorer
    if sub.llm.name != scorer.config.name:
        raise SubmissionError(f"{source}: field llm.name: expected {scorer.config.name!r}, found {_show(sub.llm.name)}")
    prompt_version = scorer.describe()["prompt_version"]
    if sub.llm.prompt_version != prompt_version:
        raise SubmissionError(f"{source}: field llm.prompt_version: expected {prompt_version!r}, "
                              f"found {_show(sub.llm.prompt_version)}; the prompt changed: re-run the agent with this "
                              "ragenv version")
    if sub.llm.fingerprint != scorer.fingerprint:  # the model alone: any numeric setting replays
        raise SubmissionError(
            f"{source}: field llm.fingerprint: expected {scorer.fingerprint[:16]}... (the weights and tokenizer of "
            f"{scorer.config.name} here), found {sub.llm.fingerprint[:16]}...; the submission was made with another "
            "model under that name: re-run it with this LLM")

    expected_ids = [q.id for q in base.questions]
    expected_set = set(expected_ids)
    where = f"{sub.dataset.name}/{base.split_name}" + (f" (first {sub.dataset.limit})" if sub.dataset.limit else "")
    extra = [(i, a.question_id) for i, a in enumerate(sub.actions) if a.question_id not in expected_set]
    if extra:
        i, qid = extra[0]
        raise SubmissionError(f"{source}: field actions[{i}].question_id: expected a question of {where}, found "
                              f"{_show(qid)}" + (f" ({len(extra)} such actions)" if len(extra) > 1 else ""))
    given = {a.question_id for a in sub.actions}
    missing = [qid for qid in expected_ids if qid not in given]
    if missing:
        examples = ", ".join(repr(q) for q in missing[:3])
        raise SubmissionError(f"{source}: field actions: expected one action for each of the {len(expected_ids)} "
                              f"questions of {where}, found {len(missing)} missing (e.g. {examples})")

    if isinstance(sub, SmartRAGSubmission):  # option names were checked by the format, the quota by its options
        from ragenv.envs.smartrag.queries import QUERY_OPTIONS

        return {a.question_id: [QUERY_OPTIONS.index(name) for name in a.retrievals] for a in sub.actions}
    corpus = base.corpus
    rows: dict[str, list[int]] = {}
    for i, action in enumerate(sub.actions):
        for j, pid in enumerate(action.passage_ids):
            if pid not in corpus:
                raise SubmissionError(
                    f"{source}: field actions[{i}].passage_ids[{j}]: expected a passage id of corpus {corpus.name} "
                    f"({len(corpus):,} passages, ids like {corpus[0].id!r}), found {_show(pid)}")
        rows[action.question_id] = [corpus.row(pid) for pid in action.passage_ids]
    return rows


def replay(sub: Submission, *, env: gym.Env | None = None, allow_local: bool = False,
           data_dir: str | None = None, progress: bool = True, source: str = "submission", dtype: str | None = None,
           device: str = "auto") -> dict:
    """Score a submission by replay: the scored document (metrics, metadata, per-question outcomes).

    ``env``: an environment made by :func:`ragenv.evaluate.make_env` to reuse (it is
    checked against the submission); by default one is made from the submission.
    ``dtype``: None replays in the canonical setting; another dtype must be asked for here.
    """
    from ragenv.evaluate import make_env, summarize
    from ragenv.provenance import provenance

    if sub.env_id not in REPLAYABLE_ENVS or sub.env_id not in gym.registry:
        raise SubmissionError(f"{source}: field env_id: expected one of {', '.join(REPLAYABLE_ENVS)}, found "
                              f"{_show(sub.env_id)}")
    _check_names(sub, source, allow_local)
    started = time.perf_counter()
    if env is None:
        try:
            env = make_env(replay_config(sub, data_dir, dtype, device), features=False)
        except SubmissionError:
            raise
        except RagenvError as exc:  # e.g. a dataset folder without that split
            raise SubmissionError(f"{source}: cannot build the environment it names ({sub.dataset.name}/"
                                  f"{sub.dataset.split}, {sub.llm.name}): {exc}") from None
    base = env.unwrapped
    check_setting(base.scorer, dtype, source)
    checked = check_against_env(sub, env, source)
    stats_before = asdict(base.scorer.stats)
    if isinstance(sub, RetrievalSubmission):
        records, per_question = _replay_retrieval(env, checked, sub.metadata.name, progress)
    else:
        records, per_question = _replay_smartrag(env, checked, sub.metadata.name, progress)
    llm_work = {key: value - stats_before[key] for key, value in asdict(base.scorer.stats).items()}
    metrics = summarize(records, getattr(base, "k", None) if isinstance(sub, RetrievalSubmission) else None)
    return {
        "entry_format": ENTRY_FORMAT,
        "env_id": sub.env_id,
        "metadata": sub.metadata.model_dump(mode="json"),
        "dataset": sub.dataset.model_dump(mode="json"),
        "llm": sub.llm.model_dump(mode="json"),
        "env_options": sub.env_options.model_dump(mode="json"),
        "numerics": base.scorer.numerics.describe(),  # the replay's setting (llm.numerics: the submitter's)
        "provenance": provenance(base.scorer.numerics),
        "submission_sha256": hashlib.sha256(to_json(sub).encode("utf-8")).hexdigest(),
        "n": len(records),
        "metrics": {key: value for key, value in metrics.items() if key not in TELEMETRY},
        "per_question": per_question,
        "replay": {"seconds": time.perf_counter() - started, "cache_hit_rate": metrics.get("cache_hit_rate"),
                   "llm_work": llm_work},
    }


def _replay_retrieval(env: gym.Env, rows: dict[str, list[int]], name: str, progress: bool):
    """RAGRetrieval-v0: the run's records and the entry's per-question outcomes."""
    from ragenv.evaluate import run_episodes

    base = env.unwrapped
    records = run_episodes(env, ReplayAgent(rows, base.k, name), progress=progress)
    hit = f"hit@{base.k}"
    per_question = [
        {"question_id": r["question_id"], "passage_ids": r["passage_ids"], "reward": r["reward"],
         "answer_logprob": r["answer_logprob"], "logprob_gain": r["logprob_gain"], hit: r[hit],
         "em": r.get("em"), "f1": r.get("f1"), "accuracy": r.get("accuracy"),
         "generated_answer": r.get("generated_answer")}
        for r in records]
    return records, per_question


def _replay_smartrag(env: gym.Env, traces: dict[str, list[int]], name: str, progress: bool,
                     batch_size: int = 16):
    """SmartRAG-v0: ask the frozen LLM only about the states the traces reach (batched), then run the episodes."""
    from ragenv.envs.smartrag.queries import QUERY_OPTIONS
    from ragenv.evaluate import run_multi_step_episodes

    base = env.unwrapped
    engine, questions = base.engine, base.questions
    for start in range(0, len(questions), batch_size):
        chunk = questions[start:start + batch_size]
        engine.prepare(chunk)
        engine.answers([(q, engine.rows_after(q, traces[q.id])) for q in chunk])
    agent = TraceReplayAgent({qid: tuple(trace) for qid, trace in traces.items()}, name)
    records = run_multi_step_episodes(env, agent, progress=progress, precompute=False)
    # No query texts: they would copy the dataset's questions into the repository, and the trace gives them back.
    per_question = [
        {"question_id": r["question_id"], "retrievals": [QUERY_OPTIONS[o] for o in traces[r["question_id"]]],
         "passage_ids": r["passage_ids"], "reward": r["reward"],
         "em": r["em"], "f1": r["f1"], "accuracy": r["accuracy"], "generated_answer": r["generated_answer"]}
        for r in records]
    return records, per_question


def score_file(path: str | Path, *, allow_local: bool = False, env: gym.Env | None = None, data_dir: str | None = None,
               progress: bool = True, dtype: str | None = None, device: str = "auto") -> dict:
    """Read, validate and replay one submission file (what ``ragenv leaderboard evaluate`` does)."""
    return replay(read_submission(path), env=env, allow_local=allow_local, data_dir=data_dir, progress=progress,
                  source=Path(path).name, dtype=dtype, device=device)


def metric_differences(evaluated: dict, replayed: dict) -> list[str]:
    """Metrics where an ``evaluate`` run and its replay disagree (NaN equals NaN; timing is skipped)."""
    differences = []
    for key in sorted(set(evaluated) | set(replayed)):
        if key in TELEMETRY:
            continue
        a, b = evaluated.get(key), replayed.get(key)
        same = a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)
        if not same:
            differences.append(f"{key}: evaluate {a!r}, replay {b!r}")
    return differences
