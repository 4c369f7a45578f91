"""Baseline agents (BM25, dense, closed-book, oracle, random). Build them with :func:`ragenv.registry.make_agent`."""
from ragenv.baselines.retrieval import ClosedBookAgent, OracleAgent, RandomAgent, RetrieverAgent

__all__ = ["ClosedBookAgent", "OracleAgent", "RandomAgent", "RetrieverAgent"]
