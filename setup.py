"""Which folders become which packages; the metadata is in pyproject.toml.

The checkout keeps ``envs/``, ``agents/``, ``baselines/`` and ``leaderboard/`` beside ``ragenv/``
(``envs``, ``agents`` and ``baselines`` are taken names on PyPI), and they install as
``ragenv.envs``, ``ragenv.agents``, ... . Every subpackage under those roots and every
non-Python file inside them is found here, so a new subpackage or data folder needs no hand
list (a hand list once forgot ``ragenv.index`` and the wheel could not make an environment).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).resolve().parent

# Installed package name -> folder in the checkout.
ROOTS = {
    "ragenv": "ragenv",
    "ragenv.envs": "envs",
    "ragenv.agents": "agents",
    "ragenv.baselines": "baselines",
    "ragenv.leaderboard": "leaderboard",
}


def _git_ignored(paths: list[str]) -> set[str]:
    """The paths git ignores (generated output such as leaderboard/site/); empty without git."""
    if not paths or not (HERE / ".git").exists():
        return set()
    try:
        done = subprocess.run(["git", "check-ignore", "--stdin", "-z"], cwd=HERE,
                              input="\0".join(paths) + "\0", capture_output=True, text=True, check=False)
    except OSError:
        return set()
    return {p for p in done.stdout.split("\0") if p}


def _skipped(rel: Path) -> bool:
    """Never package bytecode, caches or hidden files."""
    return any(part == "__pycache__" or part.startswith(".") for part in rel.parts) or rel.suffix in (".pyc", ".pyo")


def discover() -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    """(packages, package_dir, package_data) for every root in :data:`ROOTS`.

    Every folder under a root is a package (data folders such as ``leaderboard/schema``
    as namespace packages, as setuptools asks), and every non-Python file in a package's
    own folder is its package data. Git-ignored output (``leaderboard/site/``) stays out.
    """
    folders: dict[str, Path] = {}  # package -> its folder, relative to HERE
    for name, folder in ROOTS.items():
        folders[name] = Path(folder)
        for sub in find_namespace_packages(str(HERE / folder)):
            rel = Path(folder, *sub.split("."))
            if not _skipped(rel.relative_to(folder)):
                folders[f"{name}.{sub}"] = rel
    files = {package: sorted(p.relative_to(HERE) for p in (HERE / folder).iterdir()
                             if p.is_file() and p.suffix != ".py" and not _skipped(p.relative_to(HERE / folder)))
             for package, folder in folders.items()}
    ignored = _git_ignored([f"{folder.as_posix()}/" for folder in folders.values()]
                           + [rel.as_posix() for rels in files.values() for rel in rels])
    packages = [package for package, folder in folders.items()
                if f"{folder.as_posix()}/" not in ignored
                and not any(f"{parent.as_posix()}/" in ignored for parent in folder.parents)]
    package_data = {package: [rel.name for rel in files[package] if rel.as_posix() not in ignored]
                    for package in packages}
    return packages, dict(ROOTS), {package: names for package, names in package_data.items() if names}


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import discover() alone
    packages, package_dir, package_data = discover()
    setup(packages=packages, package_dir=package_dir, package_data=package_data)
