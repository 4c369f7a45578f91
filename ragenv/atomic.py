"""Atomic writes: a file or folder appears whole under its final name, or not at all.

Everything ragenv writes that a crash could tear (results, checkpoints, journals, converted
models, indexes) goes through here: write beside the target under a temporary name (with the
process id, so that concurrent writers never share one), then ``os.replace`` it into place.
"""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def temporary_name(path: Path) -> Path:
    """The scratch path beside ``path`` that this process writes before the swap."""
    return path.with_name(f"{path.name}.tmp{os.getpid()}")


@contextmanager
def atomic_path(path: str | Path, *, folder: bool = False, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to fill; on success it replaces ``path``, on error it is removed.

    ``folder``: the temporary path is created as an empty folder. ``fsync``: flush a file to
    disk before the swap (for journals whose records must survive a power cut).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    _remove(tmp)
    if folder:
        tmp.mkdir()
    try:
        yield tmp
        if fsync and tmp.is_file():
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write(path: str | Path, data: str | bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_path(path, fsync=fsync) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | Path, document: Any, **dumps) -> Path:
    """``json.dumps(document, **dumps)`` written atomically (``indent=1``, NaN allowed, unless given)."""
    options = {"indent": 1, "ensure_ascii": False, "allow_nan": True, **dumps}
    return atomic_write(path, json.dumps(document, **options))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
