"""ragenv: retrieval-augmented generation as Gymnasium environments.

``import ragenv`` registers the environments; nothing heavy is imported or
downloaded until an environment is made.
"""
from __future__ import annotations

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

if "RAGRetrieval-v0" not in registry:
    register(id="RAGRetrieval-v0", entry_point="ragenv.envs.retrieval:RAGRetrievalEnv")
if "SmartRAG-v0" not in registry:
    register(id="SmartRAG-v0", entry_point="ragenv.envs.smartrag:SmartRAGEnv")
if "SmartRAGText-v0" not in registry:
    register(id="SmartRAGText-v0", entry_point="ragenv.envs.smartrag:SmartRAGTextEnv")
