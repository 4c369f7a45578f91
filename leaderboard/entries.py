"""Leaderboard entries: replay-scored submissions, one JSON file each, and the command that remakes them.

``leaderboard/submissions/<slug>.json`` holds what an agent did (the submission);
``leaderboard/entries/<slug>.json`` holds what the replay evaluator computed from it
(metrics, metadata, per-question outcomes, no timing, so regenerating with a warm
reward cache gives byte-identical files). :func:`regenerate` remakes both for the
baselines: ``evaluate`` runs each agent and writes its submission, the submission is
read back from disk through the validator and replayed, the replayed metrics must equal
the run's, and the static page is rebuilt.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ragenv.errors import ConfigError, RagenvError, SubmissionError
from ragenv.leaderboard.submission import DatasetRef, LLMRef, Metadata, submission_from_result, write_submission
from ragenv.numerics import CANONICAL_DTYPE
from ragenv.spec import DEFAULT_DATASET, DEFAULT_LLM

LEADERBOARD_DIR = Path(__file__).resolve().parent
ENTRIES_DIR = LEADERBOARD_DIR / "entries"
SUBMISSIONS_DIR = LEADERBOARD_DIR / "submissions"
SITE_DIR = LEADERBOARD_DIR / "site"
BASELINES = {  # environment -> the baseline agents `ragenv leaderboard regenerate` scores by default
    "RAGRetrieval-v0": ("bm25", "bm25s", "dense", "closed-book", "oracle", "random"),
    "SmartRAG-v0": ("never-retrieve", "always-retrieve", "always-retrieve:keywords", "always-retrieve:llm-query",
                    "always-retrieve:question+guess", "random", "oracle"),
}
# (environment, dataset) -> the trained reference agents with committed entries on that dataset's full test split
# (R3 and PPO, trained on nq train). Their run folders are not committed: a submission holds the agent's actions,
# so its entry replays without the weights. The README (Results) gives the commands that train each and regenerate
# its entry with `--agents`. hotpotqa's entries are regenerated locally, not committed (docs/results/hotpotqa.md).
REFERENCE_AGENTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("RAGRetrieval-v0", "nq"): ("r3:runs/r3-nq-hybrid-200",),
    ("SmartRAG-v0", "nq"): ("ppo:runs/smartrag-ppo-nq",),
}
# The README's setting: RAGRetrieval-v0, nq test, first 100 questions, Gemma 3 270M.
DEFAULT_SETTING = {"dataset": DEFAULT_DATASET, "split": "test", "limit": 100, "llm": DEFAULT_LLM}
MAX_ENTRY_BYTES = 50 * 1024 * 1024


class Entry(BaseModel):
    """A scored entry as the site reads it (our own output, but still checked: a bad file is one clear error)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    entry_format: int = Field(ge=2, le=2)
    env_id: str
    metadata: Metadata
    dataset: DatasetRef
    llm: LLMRef
    env_options: dict[str, Any]
    submission_sha256: str
    n: int = Field(ge=1)
    metrics: dict[str, Optional[float]]
    numerics: dict[str, Any]  # the replay's numeric setting (dtype, device, hardware, canonical)
    provenance: dict[str, Any]  # ragenv version and commit, library versions, CPU
    per_question: list[dict[str, Any]]


def slug(*parts: str) -> str:
    """A file-name and HTML-id safe name: lower-case letters, digits, '.', '-'."""
    text = "-".join(Path(str(p)).name if "/" in str(p) else str(p) for p in parts if p not in (None, ""))
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "entry"


def entry_slug(document: dict) -> str:
    data = document["dataset"]
    limit = data.get("limit")
    return slug(document["env_id"], data["name"], data["split"], str(limit) if limit else "all",
                document["llm"]["name"], document["metadata"]["name"])


def write_entry(document: dict, folder: str | Path = ENTRIES_DIR) -> Path:
    """Write a scored document as an entry (without the replay's timing), atomically."""
    from ragenv.evaluate import write_json

    entry = {key: value for key, value in document.items() if key != "replay"}
    path = Path(folder) / f"{entry_slug(entry)}.json"
    write_json(entry, path)
    return path


def load_entries(folder: str | Path = ENTRIES_DIR) -> list[tuple[str, Entry]]:
    """Every ``*.json`` entry of a folder, sorted by name, each checked; SubmissionError names a bad file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SubmissionError(f"entries folder {folder} does not exist; run `ragenv leaderboard regenerate` "
                              "or give --entries")
    entries = []
    for path in sorted(folder.glob("*.json")):
        if path.stat().st_size > MAX_ENTRY_BYTES:
            raise SubmissionError(f"entry {path.name}: {path.stat().st_size:,} bytes; "
                                  f"expected at most {MAX_ENTRY_BYTES:,}")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            entries.append((slug(path.stem), Entry.model_validate(document)))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SubmissionError(f"entry {path.name}: not a readable JSON file ({exc}); regenerate it") from None
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(map(str, first["loc"])) or "(top level)"
            raise SubmissionError(f"entry {path.name}: field {where}: {first['msg']}; regenerate it") from None
    return entries


def regenerate(agents=BASELINES["RAGRetrieval-v0"], *, env: str = "RAGRetrieval-v0",
               dataset: str = DEFAULT_SETTING["dataset"], split: str = DEFAULT_SETTING["split"],
               limit: int | None = DEFAULT_SETTING["limit"], llm: str = DEFAULT_SETTING["llm"],
               dtype: str | None = None, device: str = "auto", out_dir: str | Path = LEADERBOARD_DIR,
               site_dir: str | Path | None = None, data_dir: str | None = None,
               allow_local: bool = False, progress: bool = True, log=print) -> list[Path]:
    """Evaluate each agent, write its submission, replay it from disk, write its entry; then build the site.

    One environment serves every agent (the replay checks it against each submission).
    ``dtype`` None: the canonical setting; another dtype makes non-canonical entries, marked so.
    Raises RagenvError if a replay disagrees with its run: that would be a bug.
    """
    from ragenv.evaluate import EvalConfig, evaluate, make_env
    from ragenv.leaderboard.replay import metric_differences, score_file
    from ragenv.leaderboard.site import build_site
    from ragenv.registry import agent_needs_features, check_agent_name

    out_dir = Path(out_dir)
    config = EvalConfig(env=env, dataset=dataset, split=split, limit=limit, llm=llm, data_dir=data_dir,
                        dtype=dtype or CANONICAL_DTYPE, device=device)
    if not agents:
        raise ConfigError(f"no agents to score for {env}: pass --agents (see `ragenv agents --env {env}`)")
    for agent in agents:
        check_agent_name(agent, config.env)  # fail before loading anything
    environment = make_env(config, features=any(agent_needs_features(a, env) for a in agents))
    written = []
    for agent in agents:
        result = evaluate(replace(config, agent=agent), env=environment, progress=progress)
        submission_path = write_submission(submission_from_result(result),
                                           out_dir / "submissions" / f"{entry_slug(_identity(result))}.json")
        scored = score_file(submission_path, env=environment, allow_local=allow_local, progress=progress, dtype=dtype)
        differences = metric_differences(result["metrics"], scored["metrics"])
        if differences:
            raise RagenvError(f"replay of {agent} disagrees with its evaluation ({'; '.join(differences)}); "
                              "this is a bug in ragenv, please report it")
        written.append(write_entry(scored, out_dir / "entries"))
        metrics = scored["metrics"]
        log(f"{agent}: accuracy {_fmt(metrics['accuracy'])}, reward {_fmt(metrics['reward'])} "
            f"(replayed = evaluated) -> entries/{written[-1].name}")
    site = build_site(out_dir / "entries", site_dir if site_dir is not None else out_dir / "site")
    log(f"site: {site}")
    return written


def _identity(result: dict) -> dict:
    """The fields of an evaluate result that name its entry (same slug as the scored document)."""
    return {"env_id": result["env"], "dataset": {"name": result["dataset"], "split": result["split"],
                                                  "limit": result["config"].get("limit")},
            "llm": {"name": result["llm"]}, "metadata": {"name": result["agent"]}}


def _fmt(value) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
