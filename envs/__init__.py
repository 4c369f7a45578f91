"""The Gymnasium environments of ragenv (registered on ``import ragenv``)."""
from ragenv.envs.retrieval import RAGRetrievalEnv
from ragenv.envs.smartrag import SmartRAGEnv, SmartRAGTextEnv
from ragenv.envs.wrappers import CandidateScoreAction, CandidateScoreVectorAction

__all__ = ["CandidateScoreAction", "CandidateScoreVectorAction", "RAGRetrievalEnv", "SmartRAGEnv", "SmartRAGTextEnv"]
