"""The submission format: one JSON file with what an agent did, never what it scored.

A submission names the environment (``env_id``, whose ``-vN`` suffix is its version),
the data (dataset, split, ``limit`` and the split fingerprint), the frozen LLM (name,
model fingerprint, prompt version, and beside them the numeric setting the agent ran
under, for the record only), the environment options, free-text metadata, and the
agent's action for every question. The leaderboard recomputes every metric by
replaying those actions (:mod:`ragenv.leaderboard.replay`); scores a submitter puts in
``reported_metrics`` are kept apart and ignored.

The format is a discriminated union on ``env_id``:

- ``RAGRetrieval-v0``: ``actions[i] = {question_id, passage_ids}``, the canonical
  passage id strings in the order shown to the LLM (not corpus row numbers, so a
  submission survives a corpus reordering); ``[]`` is closed-book.
- ``SmartRAG-v0``: ``actions[i] = {question_id, retrievals}``, the query options the agent
  retrieved with, in order (names of :data:`ragenv.envs.smartrag.queries.QUERY_OPTIONS`:
  ``question``, ``keywords``, ``llm-query``, ``question+guess``); the episode then ends with
  ANSWER, and the frozen LLM's answer is the environment's to compute, not the submitter's.
  ``[]`` answers closed-book.

Submissions are data only. They are parsed by :func:`parse_submission` with Python's
``json`` module under strict rules (UTF-8, at most :data:`MAX_SUBMISSION_BYTES` checked
before reading, finite numbers, no duplicate keys, strict types, no unknown fields);
nothing in them is unpickled, executed or fetched; ``metadata.url`` is only shown, as
escaped text. Every failure is a :class:`~ragenv.errors.SubmissionError` whose one-line
message names the field, what was expected and what was found.

The JSON Schema in ``leaderboard/schema/submission.schema.json`` is generated from
these models (``ragenv leaderboard schema``); a test keeps the committed copy current.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from ragenv.atomic import atomic_write
from ragenv.envs.smartrag.queries import QUERY_OPTIONS
from ragenv.errors import SubmissionError
from ragenv.numerics import DTYPES

FORMAT_VERSION = 2  # 2: llm.fingerprint names the model alone; the numeric setting is llm.numerics
MAX_SUBMISSION_BYTES = 20 * 1024 * 1024  # 20 MiB: checked on the file size before anything is read
MAX_JSON_DEPTH = 32  # the format nests 4 levels; anything deeper is not a submission
MAX_ACTIONS = 100_000
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "submission.schema.json"

REPLAYABLE_ENVS = ("RAGRetrieval-v0", "SmartRAG-v0")  # envs whose submissions this version can score
AGENT_TYPES = ("sparse-retriever", "dense-retriever", "learned-retriever", "rag-policy", "no-retrieval",
               "oracle", "random", "other")
REWARDS = ("logprob", "logprob_gain", "em", "f1", "accuracy")  # as in RAGRetrievalEnv
FIRST_STAGES = ("bm25s", "pyserini", "dense")

_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
Text = Annotated[str, StringConstraints(max_length=200, pattern=_NO_CONTROL)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100,
                                        pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$")]
LongText = Annotated[str, StringConstraints(max_length=4000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Url = Annotated[str, StringConstraints(max_length=500, pattern=r"^https?://[^\s<>\"'\x00-\x1f\x7f]+$")]


class _Strict(BaseModel):
    """No coercion ("3" is not 3, true is not 1), no unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Metadata(_Strict):
    """Who made the agent and how; shown on the leaderboard, never interpreted."""

    name: Name = Field(description="Display name of the agent.")
    authors: list[Name] = Field(min_length=1, max_length=50)
    description: LongText = ""
    url: Optional[Url] = Field(None, description="Paper or code (http/https); displayed as text, never fetched.")
    agent_type: Literal[AGENT_TYPES]  # type: ignore[valid-type]
    training_data: LongText = Field(
        description="What the agent was trained or tuned on ('none' for untrained baselines).")
    test_split_used_in_training: bool = Field(
        description="True if any question or label of the evaluated split was used in training.")


class DatasetRef(_Strict):
    """The questions and corpus: ``fingerprint`` is ``Dataset.split_fingerprint(split)`` (question ids + corpus)."""

    name: Identifier = Field(description="nq, hotpotqa, squad, or a dataset folder (only replayed with --allow-local).")
    split: Text = Field(min_length=1)
    limit: Optional[int] = Field(None, ge=1, description="Only the first `limit` questions of the split.")
    fingerprint: Sha256


class NumericsRef(_Strict):
    """The numeric setting the actions were produced under: recorded, never required for replay.

    Replays run in the canonical setting (float32) whatever this says, unless the
    replaying user asks for another (``--dtype``).
    """

    dtype: Literal[DTYPES]  # type: ignore[valid-type]
    device: Identifier
    hardware: Text = ""


class LLMRef(_Strict):
    """The frozen LLM: ``fingerprint`` is ``FrozenLLM.fingerprint`` (weights and tokenizer, not the precision)."""

    name: Identifier
    fingerprint: Sha256
    prompt_version: Identifier
    numerics: NumericsRef


class RetrievalEnvOptions(_Strict):
    """RAGRetrieval-v0 options that change rewards or what the agent saw."""

    k: int = Field(3, ge=1, le=100)
    reward: Literal[REWARDS] = "logprob_gain"  # type: ignore[valid-type]
    cost_per_passage: float = Field(0.02, ge=0, le=100, allow_inf_nan=False)
    first_stage: Literal[FIRST_STAGES] = "bm25s"  # type: ignore[valid-type]
    num_candidates: int = Field(20, ge=1, le=1000)


class RetrievalAction(_Strict):
    """The passages chosen for one question, by canonical passage id, in prompt order ([] = closed-book)."""

    question_id: Identifier
    passage_ids: list[Identifier] = Field(max_length=100)


class SmartRAGEnvOptions(_Strict):
    """SmartRAG-v0 options that change rewards: alpha per retrieval, at most max_retrievals, top_n passages each."""

    alpha: float = Field(0.2, ge=-100, le=100, allow_inf_nan=False)
    max_retrievals: int = Field(1, ge=0, le=20)
    top_n: int = Field(3, ge=1, le=100)
    reward: Literal["em_f1", "accuracy"] = "em_f1"
    first_stage: Literal[FIRST_STAGES] = "bm25s"  # type: ignore[valid-type]


class SmartRAGAction(_Strict):
    """One SmartRAG-v0 episode: the query options retrieved with, in order, then ANSWER ([] = closed-book)."""

    question_id: Identifier
    retrievals: list[Literal[QUERY_OPTIONS]] = Field(  # type: ignore[valid-type]
        max_length=len(QUERY_OPTIONS), description="Query option names, in retrieval order; each at most once.")


class _SubmissionBase(_Strict):
    format_version: Literal[2] = Field(description="Version of this submission format.")
    ragenv_version: Text = Field(description="ragenv version that wrote the file (informational).")
    metadata: Metadata
    dataset: DatasetRef
    llm: LLMRef
    reported_metrics: Optional[dict[Text, float]] = Field(
        None, max_length=100,
        description="Scores the submitter measured: kept for reference, ignored by the leaderboard.")


class RetrievalSubmission(_SubmissionBase):
    """A RAGRetrieval-v0 submission: passage ids per question."""

    env_id: Literal["RAGRetrieval-v0"]
    env_options: RetrievalEnvOptions = RetrievalEnvOptions()
    actions: list[RetrievalAction] = Field(min_length=1, max_length=MAX_ACTIONS)


class SmartRAGSubmission(_SubmissionBase):
    """A SmartRAG-v0 submission: the query options each episode retrieved with."""

    env_id: Literal["SmartRAG-v0"]
    env_options: SmartRAGEnvOptions = SmartRAGEnvOptions()
    actions: list[SmartRAGAction] = Field(min_length=1, max_length=MAX_ACTIONS)


Submission = Annotated[Union[RetrievalSubmission, SmartRAGSubmission], Field(discriminator="env_id")]
_ADAPTER: TypeAdapter = TypeAdapter(Submission)


# --------------------------------------------------------------------------- schema


def submission_json_schema() -> dict:
    """The published JSON Schema (draft 2020-12), generated from the models above."""
    schema = _ADAPTER.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://ragenv.invalid/leaderboard/submission.schema.json",
        "title": "ragenv leaderboard submission",
        "description": (f"Format version {FORMAT_VERSION}. Files over {MAX_SUBMISSION_BYTES} bytes, non-finite numbers "
                        "and duplicate keys are rejected before schema validation. Metrics are recomputed by replay; "
                        "reported_metrics is ignored."),
        **schema,
    }


def schema_text() -> str:
    """The schema as the committed file holds it (stable key order, trailing newline)."""
    return json.dumps(submission_json_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: str | Path = SCHEMA_PATH) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_text(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- parsing


def _show(value: Any) -> str:
    """A short, safe description of a found value for one-line messages."""
    if isinstance(value, _NonFinite):
        return value.token if len(value.token) <= 40 else value.token[:37] + "..."
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
        return f"{text[:40]}... ({len(text)} digits)" if len(text) > 40 else f"{text} ({type(value).__name__})"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return json.dumps(text, ensure_ascii=True) + f" (string of {len(value)} characters)"
    if isinstance(value, dict):
        keys = ", ".join(json.dumps(str(key)[:20]) for key in list(value)[:5])
        return f"an object with keys {{{keys[:80]}{', ...' if len(value) > 5 else ''}}}"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    return type(value).__name__


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_@.\-]{1,60}$")


def _path(loc) -> str:
    """``actions[3].passage_ids[0]``; keys that came from the file and are not plain names are quoted."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        part = str(part)
        part = part if _PLAIN_KEY.match(part) else json.dumps(part[:60])
        out += f".{part}" if out else part
    return out or "(top level)"


class _NonFinite:
    """Stands in for NaN/Infinity while parsing, so the error can name the field that held it."""

    def __init__(self, token: str):
        self.token = token


def _find_non_finite(value: Any, loc: tuple = ()) -> tuple | None:
    """Path to the first NaN/Infinity (a parse placeholder or a Python float), plus the value."""
    if isinstance(value, _NonFinite):
        return loc + (value,)
    if isinstance(value, float) and not math.isfinite(value):
        return loc + (_NonFinite(repr(value)),)
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _find_non_finite(item, loc + (key,))
        if found:
            return found
    return None


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _depth_ok(text: str) -> bool:
    """Reject absurd nesting before the json module recurses into it (brackets counted outside strings)."""
    depth = 0
    for match in _BRACKET.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            return False
    return True


def parse_json(data: bytes, source: str = "submission") -> Any:
    """Strict JSON: UTF-8, finite numbers, unique keys, bounded nesting; SubmissionError otherwise."""
    if len(data) > MAX_SUBMISSION_BYTES:
        raise SubmissionError(f"{source}: file is {len(data):,} bytes; expected at most {MAX_SUBMISSION_BYTES:,} "
                              "(the documented limit); split or trim it")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{source}: not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x}); "
                              "expected a UTF-8 JSON file") from None
    if not text.strip():
        raise SubmissionError(f"{source}: file is empty; expected a JSON object")
    if not _depth_ok(text):
        raise SubmissionError(f"{source}: JSON nested more than {MAX_JSON_DEPTH} levels deep; expected a submission "
                              "object (see leaderboard/schema/submission.schema.json)")

    def unique_keys(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise SubmissionError(f"{source}: duplicate key {json.dumps(key[:60])} in one JSON object; "
                                      "expected each key once (which value counts would be ambiguous)")
            seen[key] = value
        return seen

    def number(token: str):
        value = float(token)
        return value if math.isfinite(value) else _NonFinite(token)

    try:
        value = json.loads(text, object_pairs_hook=unique_keys, parse_float=number, parse_constant=_NonFinite)
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits
        if isinstance(exc, SubmissionError):
            raise
        detail = "a number has more than 4300 digits" if "digits" in str(exc) else str(exc).splitlines()[0][:120]
        raise SubmissionError(f"{source}: not valid JSON: {detail}") from None
    found = _find_non_finite(value)
    if found:
        *loc, bad = found
        raise SubmissionError(f"{source}: field {_path(loc)}: expected a finite number, found {_show(bad)} "
                              "(JSON has no NaN or Infinity)")
    return value


def _schema_message(error: ValidationError, source: str) -> str:
    errors = error.errors(include_url=False)
    first = errors[0]
    loc = list(first["loc"])
    if loc and loc[0] in REPLAYABLE_ENVS:  # the union's tag, not a field
        loc = loc[1:]
    field, kind, found = _path(loc), first["type"], first.get("input")
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    if kind == "missing":
        text = f"field {field}: missing; it is required"
    elif kind == "extra_forbidden":
        text = f"field {field}: not part of the format; found {_show(found)}; remove it"
    elif kind == "literal_error":
        text = f"field {field}: expected {first['ctx']['expected']}, found {_show(found)}"
    else:
        msg = first["msg"][0].lower() + first["msg"][1:]
        msg = msg.replace("input should", "expected it to").replace("string should", "expected a string to")
        text = f"field {field}: {msg}; found {_show(found)}"
    return f"{source}: {text}{more}"


def _check_env_id(obj: dict, source: str) -> None:
    env_id = obj.get("env_id")
    known = REPLAYABLE_ENVS
    if "env_id" not in obj:
        raise SubmissionError(f"{source}: field env_id: missing; expected one of {', '.join(known)}")
    if env_id in known:
        return
    if isinstance(env_id, str) and "-v" in env_id:
        family, version = env_id.rsplit("-v", 1)
        versions = [k for k in known if k.rsplit("-v", 1)[0] == family]
        if versions:
            raise SubmissionError(f"{source}: field env_id: unknown version {json.dumps('v' + version[:20])} "
                                  f"of {json.dumps(family[:40])}; expected {', '.join(versions)}")
    raise SubmissionError(f"{source}: field env_id: unknown environment {_show(env_id)}; "
                          f"expected one of {', '.join(known)}")


def _check_consistency(sub: RetrievalSubmission | SmartRAGSubmission, source: str) -> None:
    """Rules one field cannot state alone: unique question ids; at most k distinct passages (or at most
    max_retrievals distinct query options) each."""
    seen: dict[str, int] = {}
    for i, action in enumerate(sub.actions):
        if action.question_id in seen:
            raise SubmissionError(f"{source}: field actions[{i}].question_id: expected each question once, found "
                                  f"{_show(action.question_id)} again (first at actions[{seen[action.question_id]}])")
        seen[action.question_id] = i
    if isinstance(sub, RetrievalSubmission):
        field, limit, bound = "passage_ids", sub.env_options.k, "passage ids (env_options.k)"
        repeat = "distinct passages"
    else:
        field, limit, bound = "retrievals", sub.env_options.max_retrievals, "(env_options.max_retrievals)"
        repeat = "each query option at most once (a second retrieval with it returns the same passages)"
    for i, action in enumerate(sub.actions):
        items = getattr(action, field)
        if len(items) > limit:
            raise SubmissionError(f"{source}: field actions[{i}].{field}: expected at most {limit} {bound}, "
                                  f"found {len(items)}")
        if len(set(items)) != len(items):
            dup = next(item for item in items if items.count(item) > 1)
            raise SubmissionError(f"{source}: field actions[{i}].{field}: expected {repeat}, found {_show(dup)} twice")


def parse_submission(data: bytes | str | dict, source: str = "submission") -> RetrievalSubmission | SmartRAGSubmission:
    """Bytes (or text, or an already-parsed object) to a validated submission, or SubmissionError.

    Checks what needs no environment: size, encoding, JSON syntax, finite numbers,
    duplicate keys, env id and version, schema (types, required and unknown fields,
    ranges) and internal consistency. :func:`ragenv.leaderboard.replay.check_against_env`
    does the rest.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    obj = parse_json(data, source) if isinstance(data, bytes) else data
    found = _find_non_finite(obj)
    if found:
        *loc, bad = found
        raise SubmissionError(f"{source}: field {_path(loc)}: expected a finite number, found {_show(bad)}")
    if not isinstance(obj, dict):
        raise SubmissionError(f"{source}: expected a JSON object at the top level, found {_show(obj)}")
    if obj.get("format_version") == 1:
        raise SubmissionError(f"{source}: field format_version: expected {FORMAT_VERSION}, found 1 (ragenv 0.1, whose "
                              "llm.fingerprint mixed the model with its precision); make it again with "
                              "`ragenv evaluate --submission FILE`")
    _check_env_id(obj, source)
    try:
        sub = _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise SubmissionError(_schema_message(exc, source)) from None
    _check_consistency(sub, source)
    return sub


def read_submission(path: str | Path) -> RetrievalSubmission | SmartRAGSubmission:
    """Read and validate a submission file; its size is checked before a byte is read."""
    path = Path(path)
    source = path.name
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise SubmissionError(f"{path}: not a regular file; expected a submission .json file")
        if size > MAX_SUBMISSION_BYTES:
            raise SubmissionError(f"{source}: file is {size:,} bytes; expected at most {MAX_SUBMISSION_BYTES:,} "
                                  "(the documented limit); split or trim it")
        with open(path, "rb") as handle:
            data = handle.read(MAX_SUBMISSION_BYTES + 1)  # a file growing meanwhile is still bounded
    except FileNotFoundError:
        raise SubmissionError(f"submission file {path} does not exist; give the path of a .json submission") from None
    except OSError as exc:
        raise SubmissionError(f"cannot read submission {path}: {exc.strerror or exc}") from None
    return parse_submission(data, source)


def to_json(sub: RetrievalSubmission | SmartRAGSubmission) -> str:
    """The file text of a submission (what ``ragenv evaluate --submission`` writes)."""
    return json.dumps(sub.model_dump(mode="json"), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- writing one from an evaluation


BASELINE_METADATA = {  # environment -> agent -> (agent type, description, training data)
    "RAGRetrieval-v0": {
        "bm25": ("sparse-retriever", "BM25 top-k with Lucene via pyserini (k1=0.9, b=0.4)", "none (unsupervised)"),
        "bm25s": ("sparse-retriever", "BM25 top-k with bm25s (same k1, b and analysis as Lucene)",
                  "none (unsupervised)"),
        "dense": ("dense-retriever", "all-MiniLM-L6-v2 bi-encoder, exact inner-product top-k",
                  "none on this benchmark (the pretrained all-MiniLM-L6-v2 encoder)"),
        "closed-book": ("no-retrieval", "No passages: the LLM answers from its parameters", "none"),
        "oracle": ("oracle", "The gold passages of each question: an upper bound that reads the labels",
                   "none (reads gold labels)"),
        "random": ("random", "k uniformly random passages (seed 0)", "none"),
    },
    "SmartRAG-v0": {
        "never-retrieve": ("no-retrieval", "Answer closed-book at once (never retrieve)", "none"),
        "always-retrieve": ("rag-policy", "Retrieve once with the question, then answer", "none"),
        "always-retrieve:keywords": ("rag-policy", "Retrieve once with the keyword rewrite, then answer", "none"),
        "always-retrieve:llm-query": ("rag-policy", "Retrieve once with the frozen LLM's search query, then answer",
                                      "none"),
        "always-retrieve:question+guess": ("rag-policy", "Retrieve once with the question plus the frozen LLM's "
                                           "closed-book guess, then answer", "none"),
        "random": ("random", "Uniform over the legal actions (seed 0)", "none"),
        "oracle": ("oracle", "The best action sequence of each question in hindsight: an upper bound that reads the "
                   "gold answers", "none (reads gold answers)"),
    },
}


TRAINED_AGENT_METADATA = {  # a reference agent's kind (see ragenv.registry.training_record) -> (type, description)
    "ppo": ("rag-policy", "MaskablePPO (sb3-contrib) policy over SmartRAG-v0's retrieval state and each query "
                          "option's BM25 score, trained by `ragenv train ppo`"),
    "r3": ("learned-retriever", "R3 reinforced-contrastive retriever (arXiv 2510.24652): a frozen first stage "
                                "re-ranked by a MiniLM encoder that `ragenv train r3` trains on the frozen LLM's "
                                "feedback"),
}


def default_metadata(agent: str, env_id: str = "RAGRetrieval-v0", *, dataset: str | None = None,
                     split: str | None = None, **overrides) -> Metadata:
    """Metadata for a named agent, with any field overridden (None = keep).

    The baselines' known facts; for a trained reference agent (``ppo:DIR``, ``r3:DIR``) what its
    saved ``agent.json`` says it was trained on, and whether that includes the evaluated
    ``dataset``/``split`` (the question set the submission is for).
    """
    from ragenv.registry import training_record

    known = BASELINE_METADATA.get(env_id, {})
    trained = None if agent in known else training_record(agent)
    if trained is not None:
        agent_type, description = TRAINED_AGENT_METADATA[trained["kind"]]
        questions = f", {trained['questions']} questions" if trained["questions"] else ""
        training = f"{env_id} feedback on {trained['dataset']} {trained['split']}{questions}"
        overlap = trained["dataset"] == dataset and trained["split"] in (split, "all")
        authors = ["ragenv reference agents"]
    else:
        agent_type, description, training = known.get(agent, ("other", "", "unknown"))
        overlap, authors = False, ["ragenv baselines"] if agent in known else ["unknown"]
    fields = {"name": agent, "authors": authors, "description": description, "url": None, "agent_type": agent_type,
              "training_data": training, "test_split_used_in_training": overlap}
    fields.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return Metadata.model_validate(fields)
    except ValidationError as exc:
        raise SubmissionError(
            _schema_message(exc, "submission metadata").replace("field ", "field metadata.", 1)) from None


def check_submittable(env_id: str) -> None:
    """Fail before a run whose submission could not be written (only replayable environments have one)."""
    if env_id not in REPLAYABLE_ENVS:
        raise SubmissionError(f"--submission: expected an environment whose submissions can be replayed "
                              f"({', '.join(REPLAYABLE_ENVS)}), found {env_id!r}")


def _submitted_actions(result: dict) -> tuple[type[BaseModel], list[dict]]:
    """The environment's options model and the per-question actions of an ``evaluate`` result."""
    if result["env"] == "RAGRetrieval-v0":
        return RetrievalEnvOptions, [{"question_id": r["question_id"], "passage_ids": list(r["passage_ids"])}
                                     for r in result["per_question"]]
    prefix = "retrieve:"  # SmartRAG-v0's episode record names its steps retrieve:<option> ... answer
    return SmartRAGEnvOptions, [{"question_id": r["question_id"],
                                 "retrievals": [a[len(prefix):] for a in r["actions"] if a.startswith(prefix)]}
                                for r in result["per_question"]]


def submission_from_result(result: dict, metadata: Metadata | None = None) -> RetrievalSubmission | SmartRAGSubmission:
    """The submission for an ``evaluate`` result document: its actions and identity, not its scores.

    The run's metrics go into ``reported_metrics`` only for reference; the replay
    evaluator ignores them.
    """
    from ragenv import __version__

    check_submittable(result["env"])
    options = result["env_options"]
    options_model, actions = _submitted_actions(result)
    reported = {key: value for key, value in result["metrics"].items()
                if isinstance(value, (int, float)) and math.isfinite(value)
                and key not in ("seconds", "cache_hit_rate")}
    document = {
        "format_version": FORMAT_VERSION,
        "env_id": result["env"],
        "ragenv_version": __version__,
        "metadata": (metadata or default_metadata(result["agent"], result["env"], dataset=result["dataset"],
                                                  split=result["split"])).model_dump(mode="json"),
        "dataset": {"name": result["dataset"], "split": result["split"], "limit": result["config"].get("limit"),
                    "fingerprint": result["dataset_fingerprint"]},
        "llm": {"name": result["llm"], "fingerprint": result["llm_fingerprint"],
                "prompt_version": result["prompt_version"],
                "numerics": {key: result["numerics"][key] for key in NumericsRef.model_fields}},
        "env_options": {key: options[key] for key in options_model.model_fields},
        "actions": actions,
        "reported_metrics": reported,
    }
    return parse_submission(document, "generated submission")  # what we write must pass our own validator


def write_submission(sub: RetrievalSubmission | SmartRAGSubmission, path: str | Path) -> Path:
    """Write atomically (a crash never leaves half a file)."""
    return atomic_write(path, to_json(sub))
