"""Baseline agents (BM25, dense, closed-book, oracle, random; SmartRAG policies).

Build them by name with :func:`ragenv.registry.make_agent`; each is one entry of ``ragenv.registry.AGENTS``.
"""
from ragenv.baselines.retrieval import ClosedBookAgent, OracleAgent, RandomAgent, RetrieverAgent
from ragenv.baselines.smartrag import AlwaysRetrieveAgent, NeverRetrieveAgent, OracleSequenceAgent, RandomPolicyAgent

__all__ = ["AlwaysRetrieveAgent", "ClosedBookAgent", "NeverRetrieveAgent", "OracleAgent", "OracleSequenceAgent",
           "RandomAgent", "RandomPolicyAgent", "RetrieverAgent"]
