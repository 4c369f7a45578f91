"""Packaging: setup.py finds every subpackage and data file; the lock sits inside pyproject's ranges."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # model-free: the fast tier

REPO = Path(__file__).resolve().parents[1]


def _setup_module():
    spec = importlib.util.spec_from_file_location("ragenv_setup_py", REPO / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not __main__: setup() is not called
    return module


def test_every_folder_with_an_init_is_a_package_and_every_data_file_is_packaged():
    setup_py = _setup_module()
    packages, package_dir, package_data = setup_py.discover()
    assert package_dir == setup_py.ROOTS
    for name, folder in setup_py.ROOTS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            assert ".".join((name, *rel.parts)) in packages, init
    assert {"ragenv.index", "ragenv.agents.r3", "ragenv.leaderboard.schema"} <= set(packages)
    assert "submission.schema.json" in package_data["ragenv.leaderboard.schema"]
    assert package_data["ragenv.leaderboard.entries"] and package_data["ragenv.leaderboard.submissions"]
    assert not any(name.endswith((".py", ".pyc")) for names in package_data.values() for name in names)
    assert not any(".__pycache__" in p or p.endswith("__pycache__") for p in packages)


def test_every_locked_version_is_inside_pyproject_ranges():
    tomllib = pytest.importorskip("tomllib")
    packaging_requirements = pytest.importorskip("packaging.requirements")
    from ragenv.doctor import normalize_name, read_lock

    if not (REPO / "requirements.lock").is_file():
        pytest.skip("no requirements.lock")
    locked = {normalize_name(name): version for name, version in read_lock(REPO / "requirements.lock")[0]}
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    outside = []
    for text in requirements:
        requirement = packaging_requirements.Requirement(text)
        version = locked.get(normalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            outside.append(f"{requirement} (locked: {version})")
    assert not outside, outside
