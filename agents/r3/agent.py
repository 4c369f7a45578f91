"""A trained R3 retriever as a RAGRetrieval-v0 agent: ``ragenv evaluate --agent r3:DIR``.

``DIR`` holds ``agent.json`` (kind, format, the R3Config, training record) and ``model.pt``
(encoder weights and vocabulary bias); the dense-reindex ablation adds ``passages.npy``, its
final full index.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ragenv.agents.r3.training import AGENT_FORMAT, R3Config, R3Retriever, load_config
from ragenv.atomic import atomic_path, atomic_write_json
from ragenv.errors import ConfigError


class R3Agent:
    """First stage (top-m) then the trained dense head's re-rank (top-k)."""

    name = "r3"

    def __init__(self, retriever: R3Retriever, metadata: dict | None = None, env=None):
        self.retriever, self.metadata, self.env = retriever, metadata or {}, env

    @property
    def config(self) -> R3Config:
        return self.retriever.config

    def save(self, folder: str | Path) -> Path:
        import torch

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.retriever.encoder.module.eval()
        updates = self.retriever.first_stage.save(folder)  # dense-reindex: its final index (part of its cost)
        if updates:
            self.metadata.setdefault("training", {}).update(updates)
        with atomic_path(folder / "model.pt") as tmp:
            torch.save(self.retriever.encoder.state_dict(), tmp)
        meta = {"kind": "r3", "format": AGENT_FORMAT, "config": asdict(self.config), **self.metadata}
        atomic_write_json(folder / "agent.json", meta, ensure_ascii=True)
        return folder

    @classmethod
    def load(cls, folder: str | Path, env) -> "R3Agent":
        import torch

        folder = Path(folder).expanduser()
        config = load_config(folder)
        base = env.unwrapped
        retriever = R3Retriever(config, base.corpus)
        try:
            retriever.encoder.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
        except (OSError, RuntimeError) as exc:
            raise ConfigError(f"cannot load R3 weights from {str(folder)!r}: {str(exc).splitlines()[0]}") from None
        retriever.encoder.module.eval()
        retriever.first_stage.load(folder)
        metadata = json.loads((folder / "agent.json").read_text())
        return cls(retriever, {k: v for k, v in metadata.items() if k not in ("kind", "format", "config")}, base)

    def act(self, observation, info=None) -> np.ndarray:
        """The k passages for the environment's current question."""
        question = self.env.current_question
        return self.retriever.retrieve([question], self.env.k)[0].astype(np.int64)

    def act_batch(self, questions) -> np.ndarray:
        """Rows [n, k] for many questions at once (-1 where a candidate list ran short)."""
        return self.retriever.retrieve(list(questions), self.env.k).astype(np.int64)
