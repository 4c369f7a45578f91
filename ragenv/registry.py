"""Agents by name, for the CLI and the leaderboard: one switch from a string to an agent object."""
from __future__ import annotations

from pathlib import Path

import gymnasium as gym

from ragenv.errors import ConfigError

ENVIRONMENTS = {
    "RAGRetrieval-v0": "choose the passages a frozen LLM reads (R3)",
    "SmartRAG-v0": "decide whether to retrieve, with which query, and when to answer (SmartRAG)",
    "SmartRAGText-v0": "SmartRAG-v0 with [Search]/[Answer] string actions, for LLM policies",
}

RETRIEVAL_AGENTS = {
    "bm25": "BM25 top-k with Lucene via pyserini (k1=0.9, b=0.4)",
    "bm25s": "BM25 top-k with bm25s (same k1, b and analysis)",
    "dense": "all-MiniLM-L6-v2 bi-encoder, exact inner-product top-k",
    "closed-book": "no passages",
    "oracle": "the gold passages (upper bound)",
    "random": "k uniformly random passages",
    "r3:DIR": "an R3 retriever trained by `ragenv train r3 --output DIR` (first stage, then its live re-rank)",
}

SMARTRAG_AGENTS = {
    "never-retrieve": "answer closed-book at once",
    "always-retrieve": "retrieve once with the question, then answer",
    "always-retrieve:keywords": "retrieve once with the keyword rewrite, then answer",
    "always-retrieve:llm-query": "retrieve once with the frozen LLM's search query, then answer",
    "always-retrieve:question+guess": "retrieve once with the question plus the closed-book guess, then answer",
    "random": "uniform over the legal actions (seeded)",
    "oracle": "best action sequence per question in hindsight (upper bound)",
    "ppo:DIR": "a MaskablePPO policy trained by `ragenv train ppo --output DIR`",
}
PPO_PREFIX = "ppo:"
R3_PREFIX = "r3:"


def env_family(env_id: str) -> str:
    """``retrieval`` or ``smartrag``; ConfigError for an unknown environment id."""
    if env_id.startswith("RAGRetrieval"):
        return "retrieval"
    if env_id.startswith("SmartRAGText"):
        return "smartrag-text"
    if env_id.startswith("SmartRAG"):
        return "smartrag"
    raise ConfigError(f"unknown environment {env_id!r}: use one of {', '.join(ENVIRONMENTS)}")


def agent_names(env_id: str) -> dict[str, str]:
    family = env_family(env_id)
    if family == "retrieval":
        return RETRIEVAL_AGENTS
    if family == "smartrag":
        return SMARTRAG_AGENTS
    raise ConfigError(f"{env_id} takes string actions from LLM policies and has no built-in agents; "
                      "evaluate the baselines and PPO agents on SmartRAG-v0")


def agent_needs_features(name: str) -> bool:
    """Whether an agent reads the encoder embeddings of the observation (only PPO policies trained with them)."""
    if not name.startswith(PPO_PREFIX):
        return False
    import json

    from ragenv.agents.ppo import EMBEDDING_KEYS

    try:
        config = json.loads((Path(name[len(PPO_PREFIX):]).expanduser() / "agent.json").read_text())["config"]
        return any(key in EMBEDDING_KEYS for key in config["observation_keys"])
    except (OSError, ValueError, KeyError, TypeError):
        return True  # unreadable or older agents: give them everything; loading reports the problem


def agent_fingerprint(name: str) -> str:
    """What identifies an agent's behaviour: its name, plus a digest of the saved model for ``ppo:DIR``/``r3:DIR``."""
    prefix = next((p for p in (PPO_PREFIX, R3_PREFIX) if name.startswith(p)), None)
    if prefix is None:
        return name
    import hashlib

    folder = Path(name[len(prefix):]).expanduser()
    digest = hashlib.sha256()
    for part in ("model.zip", "agent.json", "vecnormalize.pkl", "model.pt", "passages.npy"):
        if (folder / part).is_file():
            digest.update(part.encode() + (folder / part).read_bytes())
    return f"{prefix}{digest.hexdigest()[:16]}"


def check_agent_name(name: str, env_id: str) -> None:
    """Raise ConfigError for a name no agent answers to (cheap: nothing is loaded)."""
    known = agent_names(env_id)
    if env_family(env_id) == "smartrag" and name.startswith(PPO_PREFIX):
        folder = Path(name[len(PPO_PREFIX):]).expanduser()
        if not (folder / "model.zip").is_file():
            raise ConfigError(f"no trained PPO agent in {str(folder)!r} (model.zip is missing); "
                              "train one with `ragenv train ppo --output DIR` and pass --agent ppo:DIR")
        return
    if env_family(env_id) == "retrieval" and name.startswith(R3_PREFIX):
        folder = Path(name[len(R3_PREFIX):]).expanduser()
        if not (folder / "model.pt").is_file() or not (folder / "agent.json").is_file():
            raise ConfigError(f"no trained R3 agent in {str(folder)!r} (model.pt or agent.json is missing); "
                              "train one with `ragenv train r3 --output DIR` and pass --agent r3:DIR")
        return
    if name not in known:
        raise ConfigError(f"unknown agent {name!r} for {env_id}: use one of {', '.join(known)}")


def make_agent(name: str, env: gym.Env, seed: int = 0):
    """An agent with ``act(observation, info) -> action`` for the (unwrapped) environment."""
    base = env.unwrapped
    spec = getattr(env, "spec", None) or getattr(base, "spec", None)
    spec_id = spec.id if spec is not None else ("SmartRAG-v0" if getattr(base, "multi_step", False) else "RAGRetrieval-v0")
    check_agent_name(name, spec_id)
    if env_family(spec_id) == "smartrag":
        return _make_smartrag_agent(name, base, seed)
    from ragenv.baselines import ClosedBookAgent, OracleAgent, RandomAgent, RetrieverAgent

    if name == "bm25":
        return RetrieverAgent(base, "pyserini", name="bm25")
    if name == "bm25s":
        return RetrieverAgent(base, "bm25s", name="bm25s")
    if name == "dense":
        return RetrieverAgent(base, "dense", name="dense")
    if name.startswith(R3_PREFIX):
        from ragenv.agents.r3.agent import R3Agent

        return R3Agent.load(name[len(R3_PREFIX):], env=base)
    if name == "closed-book":
        return ClosedBookAgent(base)
    if name == "oracle":
        return OracleAgent(base)
    if name == "random":
        return RandomAgent(base, seed=seed)
    raise ConfigError(f"unknown agent {name!r} for {spec_id}: use one of {', '.join(agent_names(spec_id))}")


def _make_smartrag_agent(name: str, env, seed: int):
    from ragenv.baselines.smartrag import AlwaysRetrieveAgent, NeverRetrieveAgent, OracleSequenceAgent, RandomPolicyAgent

    if name.startswith(PPO_PREFIX):
        from ragenv.agents.ppo import PPOAgent

        return PPOAgent.load(name[len(PPO_PREFIX):], env=env)
    if name == "never-retrieve":
        return NeverRetrieveAgent(env)
    if name == "always-retrieve" or name.startswith("always-retrieve:"):
        return AlwaysRetrieveAgent(env, name.partition(":")[2] or "question")
    if name == "random":
        return RandomPolicyAgent(env, seed=seed)
    if name == "oracle":
        return OracleSequenceAgent(env)
    raise ConfigError(f"unknown agent {name!r} for SmartRAG-v0: use one of {', '.join(SMARTRAG_AGENTS)}")
