"""ragenv: retrieval-augmented generation as Gymnasium environments.

``import ragenv`` registers the environments (and their batched vector versions for
``gym.make_vec(..., vectorization_mode="vector_entry_point")``); nothing heavy is imported or
downloaded until an environment is made.
"""
from __future__ import annotations

from gymnasium.envs.registration import register, registry

__version__ = "0.2.0"

# The environments: id, entry point, batched vector entry point (or None), what the agent decides.
# Adding an environment is one row here (its class lives in envs/); ``ragenv agents``, ``evaluate``
# and the docs read this table.
ENVIRONMENTS = (
    ("RAGRetrieval-v0", "ragenv.envs.retrieval:RAGRetrievalEnv", "ragenv.envs.vector:RAGRetrievalVectorEnv",
     "choose the passages a frozen LLM reads (R3)"),
    ("SmartRAG-v0", "ragenv.envs.smartrag:SmartRAGEnv", "ragenv.envs.vector:SmartRAGVectorEnv",
     "decide whether to retrieve, with which query, and when to answer (SmartRAG)"),
    ("SmartRAGText-v0", "ragenv.envs.smartrag:SmartRAGTextEnv", None,
     "SmartRAG-v0 with [Search]/[Answer] string actions, for LLM policies"),
)

for _env_id, _entry_point, _vector_entry_point, _ in ENVIRONMENTS:
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry_point, vector_entry_point=_vector_entry_point)
