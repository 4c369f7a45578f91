"""Environments and agents by name, for the CLI, ``evaluate`` and the leaderboard.

Adding an agent is one :class:`AgentEntry` in :data:`AGENTS` (or :func:`register_agent` from
your own code): its name, environment family, one-line description and a factory. Every agent
follows :class:`Agent`; retrieval agents also follow :class:`RetrievalAgent` (one batched
``act_batch`` signature). ``ragenv agents --env ENV`` lists the entries.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import gymnasium as gym
import numpy as np

from ragenv import ENVIRONMENTS as ENVIRONMENT_TABLE
from ragenv.data import Question
from ragenv.errors import ConfigError

ENVIRONMENTS = {env_id: what for env_id, _, _, what in ENVIRONMENT_TABLE}  # id -> what the agent decides
FAMILIES = ("retrieval", "smartrag")  # the environment families with built-in agents


@runtime_checkable
class Agent(Protocol):
    """What ``evaluate`` and the leaderboard call: one action for the environment's current state."""

    name: str

    def act(self, observation: Any, info: dict | None = None) -> Any: ...


@runtime_checkable
class RetrievalAgent(Agent, Protocol):
    """A RAGRetrieval-v0 agent: also chooses rows ``[n, k]`` (-1: empty slot) for many questions at once."""

    def act_batch(self, questions: Sequence[Question]) -> np.ndarray: ...


@dataclass(frozen=True)
class AgentEntry:
    """One agent: ``make(env, argument, seed)`` builds it for the unwrapped environment.

    ``name`` is the agent's name, or a prefix ending in ``:`` (``"r3:"``) for agents loaded from
    a folder or otherwise parametrised: the rest of the name is the ``argument``. ``saved_files``
    are the files a trained agent's folder must hold (checked before anything loads);
    ``needs_features(argument)`` says whether it reads the observation's encoder embeddings.
    """

    name: str
    family: str
    description: str
    make: Callable[[gym.Env, str, int], Agent]
    usage: str = ""  # the name as users type it, when it differs (``r3:DIR``)
    saved_files: tuple[str, ...] = ()
    train_hint: str = ""
    needs_features: Callable[[str], bool] | None = None

    @property
    def parametrised(self) -> bool:
        return self.name.endswith(":")

    def matches(self, name: str) -> bool:
        return name.startswith(self.name) if self.parametrised else name == self.name


# --------------------------------------------------------------------------- factories (imported on use)


def _retriever(kind: str, name: str) -> Callable[[gym.Env, str, int], Agent]:
    def make(env, _argument, _seed):
        from ragenv.baselines.retrieval import RetrieverAgent

        return RetrieverAgent(env, kind, name=name)

    return make


def _closed_book(env, _argument, _seed):
    from ragenv.baselines.retrieval import ClosedBookAgent

    return ClosedBookAgent(env)


def _oracle(env, _argument, _seed):
    from ragenv.baselines.retrieval import OracleAgent

    return OracleAgent(env)


def _random(env, _argument, seed):
    from ragenv.baselines.retrieval import RandomAgent

    return RandomAgent(env, seed=seed)


def _r3(env, folder, _seed):
    from ragenv.agents.r3.agent import R3Agent

    return R3Agent.load(folder, env=env)


def _never_retrieve(env, _argument, _seed):
    from ragenv.baselines.smartrag import NeverRetrieveAgent

    return NeverRetrieveAgent(env)


def _always_retrieve(query: str) -> Callable[[gym.Env, str, int], Agent]:
    def make(env, _argument, _seed):
        from ragenv.baselines.smartrag import AlwaysRetrieveAgent

        return AlwaysRetrieveAgent(env, query)

    return make


def _random_policy(env, _argument, seed):
    from ragenv.baselines.smartrag import RandomPolicyAgent

    return RandomPolicyAgent(env, seed=seed)


def _oracle_sequence(env, _argument, _seed):
    from ragenv.baselines.smartrag import OracleSequenceAgent

    return OracleSequenceAgent(env)


def _ppo(env, folder, _seed):
    from ragenv.agents.ppo import PPOAgent

    return PPOAgent.load(folder, env=env)


def _ppo_needs_features(folder: str) -> bool:
    """Only PPO policies trained on the embedding keys read them (unreadable agents get everything)."""
    from ragenv.agents.ppo_config import EMBEDDING_KEYS

    try:
        config = json.loads((Path(folder).expanduser() / "agent.json").read_text())["config"]
        return any(key in EMBEDDING_KEYS for key in config["observation_keys"])
    except (OSError, ValueError, KeyError, TypeError):
        return True  # loading reports the problem


AGENTS: list[AgentEntry] = [
    AgentEntry("bm25", "retrieval", "BM25 top-k with Lucene via pyserini (k1=0.9, b=0.4)",
               _retriever("pyserini", "bm25")),
    AgentEntry("bm25s", "retrieval", "BM25 top-k with bm25s (same k1, b and analysis)", _retriever("bm25s", "bm25s")),
    AgentEntry("dense", "retrieval", "all-MiniLM-L6-v2 bi-encoder, exact inner-product top-k",
               _retriever("dense", "dense")),
    AgentEntry("closed-book", "retrieval", "no passages", _closed_book),
    AgentEntry("oracle", "retrieval", "the gold passages (upper bound)", _oracle),
    AgentEntry("random", "retrieval", "k uniformly random passages", _random),
    AgentEntry("r3:", "retrieval", "an R3 retriever trained by `ragenv train r3 --output DIR` (first stage, then its "
               "live re-rank)", _r3, usage="r3:DIR", saved_files=("model.pt", "agent.json"),
               train_hint="train one with `ragenv train r3 --output DIR` and pass --agent r3:DIR"),
    AgentEntry("never-retrieve", "smartrag", "answer closed-book at once", _never_retrieve),
    AgentEntry("always-retrieve", "smartrag", "retrieve once with the question, then answer",
               _always_retrieve("question")),
    AgentEntry("always-retrieve:keywords", "smartrag", "retrieve once with the keyword rewrite, then answer",
               _always_retrieve("keywords")),
    AgentEntry("always-retrieve:llm-query", "smartrag", "retrieve once with the frozen LLM's search query, then answer",
               _always_retrieve("llm-query")),
    AgentEntry("always-retrieve:question+guess", "smartrag",
               "retrieve once with the question plus the closed-book guess, then answer",
               _always_retrieve("question+guess")),
    AgentEntry("random", "smartrag", "uniform over the legal actions (seeded)", _random_policy),
    AgentEntry("oracle", "smartrag", "best action sequence per question in hindsight (upper bound)", _oracle_sequence),
    AgentEntry("ppo:", "smartrag", "a MaskablePPO policy trained by `ragenv train ppo --output DIR`", _ppo,
               usage="ppo:DIR", saved_files=("model.zip",), needs_features=_ppo_needs_features,
               train_hint="train one with `ragenv train ppo --output DIR` and pass --agent ppo:DIR"),
]

# Files whose bytes identify a trained agent (the order is part of the fingerprint: never reorder).
_FINGERPRINTED_FILES = ("model.zip", "agent.json", "vecnormalize.pkl", "model.pt", "passages.npy")


def register_agent(entry: AgentEntry) -> None:
    """Add an agent (from your own package) so that ``evaluate``, the leaderboard and ``ragenv agents`` know it."""
    if entry.family not in FAMILIES:
        raise ConfigError(f"agent family must be one of {', '.join(FAMILIES)}, not {entry.family!r}")
    if any(e.family == entry.family and e.name == entry.name for e in AGENTS):
        raise ConfigError(f"an agent named {entry.name!r} is already registered for {entry.family}")
    AGENTS.append(entry)


def env_family(env_id: str) -> str:
    """``retrieval``, ``smartrag`` or ``smartrag-text``; ConfigError for an unknown environment id."""
    if env_id.startswith("RAGRetrieval"):
        return "retrieval"
    if env_id.startswith("SmartRAGText"):
        return "smartrag-text"
    if env_id.startswith("SmartRAG"):
        return "smartrag"
    raise ConfigError(f"unknown environment {env_id!r}: use one of {', '.join(ENVIRONMENTS)}")


def agent_entries(env_id: str) -> list[AgentEntry]:
    """The agents of an environment, in listing order."""
    family = env_family(env_id)
    if family not in FAMILIES:
        raise ConfigError(f"{env_id} takes string actions from LLM policies and has no built-in agents; "
                          "evaluate the baselines and PPO agents on SmartRAG-v0")
    return [e for e in AGENTS if e.family == family]


def agent_names(env_id: str) -> dict[str, str]:
    """Name as typed -> description, for ``ragenv agents``."""
    return {e.usage or e.name: e.description for e in agent_entries(env_id)}


def find_agent(name: str, env_id: str) -> tuple[AgentEntry, str]:
    """The entry answering to ``name`` and its argument; ConfigError naming the known agents (nothing loads)."""
    entries = agent_entries(env_id)
    entry = next((e for e in entries if not e.parametrised and e.matches(name)), None)
    entry = entry or next((e for e in entries if e.parametrised and e.matches(name)), None)
    if entry is None:
        raise ConfigError(f"unknown agent {name!r} for {env_id}: use one of {', '.join(agent_names(env_id))}")
    argument = name[len(entry.name):] if entry.parametrised else ""
    if entry.saved_files:
        folder = Path(argument).expanduser()
        missing = [f for f in entry.saved_files if not (folder / f).is_file()]
        if missing:
            kind = entry.name.rstrip(":").upper()
            raise ConfigError(f"no trained {kind} agent in {str(folder)!r} ({' or '.join(missing)} "
                              f"{'is' if len(missing) == 1 else 'are'} missing); {entry.train_hint}")
    return entry, argument


def check_agent_name(name: str, env_id: str) -> None:
    """Raise ConfigError for a name no agent answers to (cheap: nothing is loaded)."""
    find_agent(name, env_id)


def agent_needs_features(name: str, env_id: str) -> bool:
    """Whether an agent reads the encoder embeddings of the observation (only PPO policies trained with them)."""
    try:
        entry, argument = find_agent(name, env_id)
    except ConfigError:
        return False
    return entry.needs_features(argument) if entry.needs_features else False


def _saved_agent(name: str) -> tuple[AgentEntry, Path] | None:
    """The entry and folder of a trained agent's name (``ppo:DIR``, ``r3:DIR``); None for the others."""
    entry = next((e for e in AGENTS if e.parametrised and e.saved_files and name.startswith(e.name)), None)
    return (entry, Path(name[len(entry.name):]).expanduser()) if entry is not None else None


def agent_fingerprint(name: str) -> str:
    """What identifies an agent's behaviour: its name, plus a digest of the saved model for ``ppo:DIR``/``r3:DIR``."""
    saved = _saved_agent(name)
    if saved is None:
        return name
    entry, folder = saved
    digest = hashlib.sha256()
    for part in _FINGERPRINTED_FILES:
        if (folder / part).is_file():
            digest.update(part.encode() + (folder / part).read_bytes())
    return f"{entry.name}{digest.hexdigest()[:16]}"


def training_record(name: str) -> dict | None:
    """What a trained agent (``ppo:DIR``, ``r3:DIR``) was trained on, read from its ``agent.json``.

    ``{"kind", "dataset", "split", "questions"}`` (kind: ``ppo`` or ``r3``; a field the file lacks is None);
    None for an agent that is not a saved one or whose ``agent.json`` is unreadable (loading it
    reports that). The leaderboard's submission metadata says this for the agent.
    """
    saved = _saved_agent(name)
    if saved is None:
        return None
    entry, folder = saved
    try:
        saved_metadata = json.loads((folder / "agent.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved_metadata, dict):
        return None
    # PPO keeps what it was trained on at the top level, R3 in its training record
    training = saved_metadata if "dataset" in saved_metadata else saved_metadata.get("training")
    training = training if isinstance(training, dict) else {}
    return {"kind": entry.name.rstrip(":"), **{key: training.get(key) for key in ("dataset", "split", "questions")}}


def make_agent(name: str, env: gym.Env, seed: int = 0) -> Agent:
    """The agent called ``name`` for the (unwrapped) environment."""
    base = env.unwrapped
    spec = getattr(env, "spec", None) or getattr(base, "spec", None)
    default = "SmartRAG-v0" if getattr(base, "multi_step", False) else "RAGRetrieval-v0"
    entry, argument = find_agent(name, spec.id if spec is not None else default)
    return entry.make(base, argument, seed)
