"""Checkpoints that let a killed training run resume exactly (R3 and PPO share this).

A checkpoint folder holds named payloads, each pickled with the run's *identity* (its config,
questions and model): a payload written by another run, or torn by a crash, reads as absent,
so a resume never mixes two runs. Every file is written atomically.
"""
from __future__ import annotations

import pickle
import random
import shutil
from pathlib import Path
from typing import Any

from ragenv.atomic import atomic_path


class Checkpoint:
    """``folder/NAME`` payloads tagged with ``identity``; :meth:`remove` once the run has finished."""

    def __init__(self, folder: str | Path, identity: dict):
        self.folder, self.identity = Path(folder), identity

    def read(self, name: str) -> Any | None:
        """The payload saved as ``name`` by this same run, else None (missing, torn or another run's)."""
        try:
            with open(self.folder / name, "rb") as handle:
                payload = pickle.load(handle)
        except Exception:  # noqa: BLE001 - missing, torn by a crash or unreadable: not used
            return None
        if not isinstance(payload, dict) or payload.get("identity") != self.identity:
            return None
        return payload["data"]

    def write(self, name: str, data: Any) -> None:
        """Save ``data`` as ``name``, atomically."""
        with atomic_path(self.folder / name) as tmp, open(tmp, "wb") as handle:
            pickle.dump({"identity": self.identity, "data": data}, handle)

    def remove(self) -> None:
        """Delete the folder: the run completed."""
        shutil.rmtree(self.folder, ignore_errors=True)


def generator_states() -> dict:
    """The torch, NumPy-global and Python generators' states (to restore with :func:`restore_generators`)."""
    import numpy as np
    import torch

    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def restore_generators(states: dict) -> None:
    """Put back what :func:`generator_states` saved."""
    import numpy as np
    import torch

    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
