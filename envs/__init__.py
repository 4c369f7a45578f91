"""The Gymnasium environments of ragenv (registered on ``import ragenv``)."""
from ragenv.envs.retrieval import CandidateScoreAction, RAGRetrievalEnv

__all__ = ["CandidateScoreAction", "RAGRetrievalEnv"]
