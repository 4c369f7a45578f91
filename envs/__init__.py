"""The Gymnasium environments of ragenv (registered on ``import ragenv``)."""
from ragenv.envs.retrieval import CandidateScoreAction, RAGRetrievalEnv
from ragenv.envs.smartrag import SmartRAGEnv, SmartRAGTextEnv

__all__ = ["CandidateScoreAction", "RAGRetrievalEnv", "SmartRAGEnv", "SmartRAGTextEnv"]
