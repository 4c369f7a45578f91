"""Where ragenv reads data and keeps its caches.

- Data: ``RAGENV_DATA`` (or an explicit ``data_dir``); otherwise the public files are
  downloaded once into ``<cache>/data`` and checked by sha256.
- Caches (converted models, indexes, the reward cache): ``RAGENV_CACHE``, else the
  user cache folder (``~/.cache/ragenv`` on Linux).
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The root of every ragenv cache; created on first use."""
    env = os.environ.get("RAGENV_CACHE")
    if env:
        root = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = Path(base) / "ragenv"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_subdir(name: str) -> Path:
    """A named folder under :func:`cache_dir` (``models``, ``indexes``, ...)."""
    path = cache_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The local data folder if one is configured (argument first, then ``RAGENV_DATA``)."""
    value = explicit if explicit is not None else os.environ.get("RAGENV_DATA")
    return Path(value).expanduser() if value else None
