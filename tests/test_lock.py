"""The lock (constraints.txt) pins every dependency, and the environment is what it pins.

`make` installs with ``pip -c constraints.txt``, so a fresh machine gets the versions the
suite last passed with; these tests fail when a dependency is added to pyproject.toml or
requirements-models.txt without a pin, or when the running environment drifted from the lock.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"constraints.txt: {line!r} is not name==version"
        pins[canonicalize_name(name)] = version
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in ("cpu", "dev"):
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    for line in (ROOT / "requirements-models.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            reqs.append(Requirement(line))
    return reqs


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared but constraints.txt does not pin it"
        assert Version(pins[name]) in req.specifier or not req.specifier, (
            f"constraints.txt pins {req.name}=={pins[name]}, outside {req}"
        )


def test_installed_packages_are_the_pinned_versions() -> None:
    drift = []
    for name, version in _pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            drift.append(f"{name}: pinned {version}, not installed")
            continue
        if re.sub(r"\+.*", "", installed) != version:
            drift.append(f"{name}: pinned {version}, installed {installed}")
    assert not drift, "environment differs from constraints.txt: " + "; ".join(drift)
