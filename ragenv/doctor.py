"""``ragenv doctor``: is this environment the one ``requirements.lock`` describes?

Two machines give the same numbers only with the same packages. The lock file (written by
``scripts/lock.sh``, installed by ``scripts/setup.sh``) pins every package; this module
compares each pin with what is installed and says which ones differ or are missing, so a
surprising figure can be traced to a drifted environment before anything else is suspected.

An install from a wheel has no lock file: that is reported, not treated as a failure.
"""
from __future__ import annotations

import importlib.metadata
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

from ragenv.errors import ConfigError

MATCH, LOCAL_MATCH, MISMATCH, MISSING = "match", "local-match", "mismatch", "missing"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")
_LOCK_PYTHON = re.compile(r"^#.*\bPython (\d+\.\d+(?:\.\d+)?)")


def default_lock_path() -> Path | None:
    """``requirements.lock`` at the root of the checkout ragenv runs from; None when absent (a wheel install)."""
    import ragenv

    path = Path(ragenv.__file__).resolve().parents[1] / "requirements.lock"
    return path if path.is_file() else None


def normalize_name(name: str) -> str:
    """A package name as PEP 503 compares them.

    ``PyYAML`` is ``pyyaml``, and ``typing_extensions`` is ``typing-extensions``.
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_version(name: str) -> str | None:
    """The installed version of a distribution (any spelling of its name); None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
    wanted = normalize_name(name)
    for dist in importlib.metadata.distributions():
        if normalize_name(dist.metadata["Name"] or "") == wanted:
            return dist.version
    return None


def _same_version(a: str, b: str) -> bool:
    """PEP 440 equality (``2.13`` is ``2.13.0``); plain string equality where a version does not parse."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # packaging comes with transformers; without it, compare the text
        return a == b
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def compare_versions(locked: str, installed: str | None) -> str:
    """How an installed version stands to a pin: MATCH, LOCAL_MATCH, MISMATCH or MISSING.

    Local version labels (``+cpu``) follow PEP 440's ``==``: a pin with a label needs that exact
    label; a pin without one (``torch==2.13.0``) accepts any build of that version (``2.13.0+cpu``),
    which is LOCAL_MATCH, so the report can say which build was found.
    """
    if installed is None:
        return MISSING
    locked_public, _, locked_local = locked.partition("+")
    installed_public, _, installed_local = installed.partition("+")
    if not _same_version(locked_public, installed_public):
        return MISMATCH
    if locked_local:
        return MATCH if locked_local.lower() == installed_local.lower() else MISMATCH
    return LOCAL_MATCH if installed_local else MATCH


@dataclass(frozen=True)
class PackageCheck:
    """One pin of the lock file and what is installed."""

    name: str  # as the lock file spells it
    locked: str
    installed: str | None
    status: str  # MATCH, LOCAL_MATCH, MISMATCH or MISSING


@dataclass
class DoctorReport:
    """Every pin of the lock file checked against the installed packages (no checks without a lock file)."""

    lock_path: Path | None
    checks: list[PackageCheck] = field(default_factory=list)
    python: str = field(default_factory=platform.python_version)
    lock_python: str | None = None  # the Python the lock was made on, from its header

    def _with(self, *statuses: str) -> list[PackageCheck]:
        return [c for c in self.checks if c.status in statuses]

    @property
    def matches(self) -> list[PackageCheck]:
        return self._with(MATCH, LOCAL_MATCH)

    @property
    def local_matches(self) -> list[PackageCheck]:
        return self._with(LOCAL_MATCH)

    @property
    def mismatches(self) -> list[PackageCheck]:
        return self._with(MISMATCH)

    @property
    def missing(self) -> list[PackageCheck]:
        return self._with(MISSING)

    @property
    def ok(self) -> bool:
        """True when every pin is installed at its version (or there is no lock file to check)."""
        return not self.mismatches and not self.missing


def read_lock(path: Path) -> tuple[list[tuple[str, str]], str | None]:
    """The ``(name, version)`` pins of a lock file, and the Python its header names (if any).

    Comments, blank lines, pip options and anything that is not ``name==version`` are skipped.
    """
    pins: list[tuple[str, str]] = []
    lock_python = None
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("#"):
            found = _LOCK_PYTHON.match(line)
            if found and lock_python is None:
                lock_python = found.group(1)
            continue
        found = _PIN.match(line)
        if found:
            pins.append((found.group(1), found.group(2)))
    return pins, lock_python


def check_environment(lock_path: Path | None = None) -> DoctorReport:
    """Compare every pin of the lock file (default: the checkout's ``requirements.lock``) with the installed version.

    Without a lock file (a wheel install) the report has no checks and is ``ok``; an explicit
    ``lock_path`` that does not exist is an error.
    """
    if lock_path is None:
        lock_path = default_lock_path()
        if lock_path is None:
            return DoctorReport(lock_path=None)
    lock_path = Path(lock_path)
    if not lock_path.is_file():
        raise ConfigError(f"no lock file at {lock_path}")
    pins, lock_python = read_lock(lock_path)
    checks = []
    for name, locked in pins:
        installed = installed_version(name)
        checks.append(PackageCheck(name, locked, installed, compare_versions(locked, installed)))
    return DoctorReport(lock_path=lock_path, checks=checks, lock_python=lock_python)


def render(report: DoctorReport) -> list[str]:
    """The report as short human-readable lines: what was checked, what differs, and what to do."""
    if report.lock_path is None:
        return [f"python {report.python}",
                "no lock file found (an install without the checkout's requirements.lock): nothing to compare"]
    lines = [f"lock file: {report.lock_path} ({len(report.checks)} pinned packages)"]
    python = f"python {report.python}"
    if report.lock_python is not None:
        same = report.python.split(".")[:2] == report.lock_python.split(".")[:2]
        differs = "" if same else ": a different Python, wheels may differ"
        python += f" (the lock was made on {report.lock_python}{differs})"
    lines.append(python)
    lines.append(f"{len(report.matches)} of {len(report.checks)} match")
    for c in report.local_matches:
        assert c.installed is not None  # a local match is installed
        local = c.installed.partition("+")[2]
        lines.append(f"  {c.name}: {c.installed} installed, locked {c.locked} (the same version; local build +{local})")
    for c in report.mismatches:
        lines.append(f"mismatch: {c.name} {c.installed} installed, locked {c.locked}")
    for c in report.missing:
        lines.append(f"missing: {c.name} (locked {c.locked}) is not installed")
    if report.ok:
        lines.append("ok: the installed packages are the locked ones")
    else:
        problems = len(report.mismatches) + len(report.missing)
        lines.append(f"{problems} package{'s' if problems != 1 else ''} differ from the lock: "
                     "run scripts/setup.sh to install the locked versions")
    return lines
