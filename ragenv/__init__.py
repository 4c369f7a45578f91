"""ragenv: retrieval-augmented generation as Gymnasium environments.

``import ragenv`` registers the environments (and their batched vector versions for
``gym.make_vec(..., vectorization_mode="vector_entry_point")``); nothing heavy is imported or
downloaded until an environment is made.
"""
from __future__ import annotations

from gymnasium.envs.registration import register, registry

__version__ = "0.2.0"

if "RAGRetrieval-v0" not in registry:
    register(id="RAGRetrieval-v0", entry_point="ragenv.envs.retrieval:RAGRetrievalEnv",
             vector_entry_point="ragenv.envs.vector:RAGRetrievalVectorEnv")
if "SmartRAG-v0" not in registry:
    register(id="SmartRAG-v0", entry_point="ragenv.envs.smartrag:SmartRAGEnv",
             vector_entry_point="ragenv.envs.vector:SmartRAGVectorEnv")
if "SmartRAGText-v0" not in registry:
    register(id="SmartRAGText-v0", entry_point="ragenv.envs.smartrag:SmartRAGTextEnv")
