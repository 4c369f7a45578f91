"""Agents by name, for the CLI and the leaderboard: one switch from a string to an agent object."""
from __future__ import annotations

import gymnasium as gym

from ragenv.errors import ConfigError

RETRIEVAL_AGENTS = {
    "bm25": "BM25 top-k with Lucene via pyserini (k1=0.9, b=0.4)",
    "bm25s": "BM25 top-k with bm25s (same k1, b and analysis)",
    "dense": "all-MiniLM-L6-v2 bi-encoder, exact inner-product top-k",
    "closed-book": "no passages",
    "oracle": "the gold passages (upper bound)",
    "random": "k uniformly random passages",
}


def agent_names(env_id: str) -> dict[str, str]:
    if env_id.startswith("RAGRetrieval"):
        return RETRIEVAL_AGENTS
    raise ConfigError(f"unknown environment {env_id!r}: use RAGRetrieval-v0")


def check_agent_name(name: str, env_id: str) -> None:
    """Raise ConfigError for a name no agent answers to (cheap: nothing is loaded)."""
    known = agent_names(env_id)
    if name not in known:
        raise ConfigError(f"unknown agent {name!r} for {env_id}: use one of {', '.join(known)}")


def make_agent(name: str, env: gym.Env, seed: int = 0):
    """An agent with ``act(observation, info) -> action`` for the (unwrapped) environment."""
    from ragenv.baselines import ClosedBookAgent, OracleAgent, RandomAgent, RetrieverAgent

    base = env.unwrapped
    spec_id = getattr(getattr(env, "spec", None), "id", None) or "RAGRetrieval-v0"
    known = agent_names(spec_id)
    if name == "bm25":
        return RetrieverAgent(base, "pyserini", name="bm25")
    if name == "bm25s":
        return RetrieverAgent(base, "bm25s", name="bm25s")
    if name == "dense":
        return RetrieverAgent(base, "dense", name="dense")
    if name == "closed-book":
        return ClosedBookAgent(base)
    if name == "oracle":
        return OracleAgent(base)
    if name == "random":
        return RandomAgent(base, seed=seed)
    raise ConfigError(f"unknown agent {name!r} for {spec_id}: use one of {', '.join(known)}")
