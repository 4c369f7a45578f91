"""Checkpoints that let a killed training run resume exactly (R3 and PPO share this).

A checkpoint folder holds named payloads, each pickled with the run's *identity* (its config,
questions and model): a payload written by another run, or torn by a crash, reads as absent,
so a resume never mixes two runs. Every file is written atomically, one by one (:meth:`Checkpoint.write`),
or a whole set of files at once (:meth:`Checkpoint.snapshot`: files that must match each other,
such as a model and the state of the run that produced it).
"""
from __future__ import annotations

import pickle
import random
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ragenv.atomic import atomic_path


class Checkpoint:
    """``folder/NAME`` payloads tagged with ``identity``; :meth:`remove` once the run has finished."""

    def __init__(self, folder: str | Path, identity: dict):
        self.folder, self.identity = Path(folder), identity

    def read(self, name: str) -> Any | None:
        """The payload saved as ``name`` by this same run, else None (missing, torn or another run's)."""
        self.recover()
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

    def write_into(self, folder: Path, name: str, data: Any) -> None:
        """Save ``data`` as ``name`` inside a :meth:`snapshot` being written."""
        with open(Path(folder) / name, "wb") as handle:
            pickle.dump({"identity": self.identity, "data": data}, handle)

    @contextmanager
    def snapshot(self) -> Iterator[Path]:
        """Yield an empty folder to write a whole checkpoint into; on success it replaces the old one at once.

        Two renames (old aside, new in); a kill between them leaves the old one aside, which
        :meth:`recover` (called by :meth:`read`) puts back.
        """
        tmp, old = self._beside(".tmp"), self._beside(".old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
        if self.folder.exists():
            self.folder.rename(old)
        tmp.rename(self.folder)
        shutil.rmtree(old, ignore_errors=True)

    def recover(self) -> None:
        """Put back a checkpoint a kill left aside between :meth:`snapshot`'s two renames."""
        old = self._beside(".old")
        if not self.folder.exists() and old.exists():
            old.rename(self.folder)

    def remove(self) -> None:
        """Delete the folder (and any snapshot in progress): the run completed."""
        for folder in (self.folder, self._beside(".tmp"), self._beside(".old")):
            shutil.rmtree(folder, ignore_errors=True)

    def _beside(self, suffix: str) -> Path:
        return self.folder.with_name(self.folder.name + suffix)


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
