"""pyproject.toml states ranges; requirements.txt pins what the platform installs (and
requirements-dev.txt what the tests add). The pins must stay inside the ranges and cover them."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _project() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]


def _pins(filename: str) -> dict[str, Version]:
    """``name==version`` lines by canonical name; anything looser than an exact pin is refused."""
    pins = {}
    for line in (ROOT / filename).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-r "):
            continue
        req = Requirement(line)
        (spec,) = req.specifier  # exactly one specifier …
        assert spec.operator == "==" and "*" not in spec.version, f"{filename}: {line!r} is not an exact pin"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{filename}: {req.name} pinned twice"
        pins[name] = Version(spec.version)
    return pins


def _extra_requirements(req: Requirement) -> list[Requirement]:
    """What ``name[extra]`` adds, read from the installed distribution's metadata (e.g. psycopg[binary]
    requires psycopg-binary at psycopg's own version)."""
    out = []
    for raw in metadata.requires(req.name) or []:
        extra_req = Requirement(raw)
        marker = extra_req.marker
        if marker and "extra" in str(marker) and any(marker.evaluate({"extra": e}) for e in req.extras):
            out.append(extra_req)
    return out


def _unsatisfied(requirements: list[Requirement], pins: dict[str, Version]) -> list[str]:
    problems = []
    for req in requirements:
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req} is not pinned")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req.name}=={pinned} is outside {req}")
    return problems


def test_every_runtime_dependency_is_pinned_inside_its_range():
    pins = _pins("requirements.txt")
    dependencies = [Requirement(d) for d in _project()["dependencies"]]
    extras = [r for d in dependencies if d.extras for r in _extra_requirements(d)]
    assert any(canonicalize_name(r.name) == "psycopg-binary" for r in extras)  # the metadata was read

    assert _unsatisfied(dependencies + extras, pins) == []


def test_every_pin_belongs_to_a_declared_dependency():
    project = _project()
    runtime = [Requirement(d) for d in project["dependencies"]]
    declared = {canonicalize_name(r.name) for r in runtime}
    declared |= {canonicalize_name(r.name) for d in runtime if d.extras for r in _extra_requirements(d)}
    dev = [Requirement(d) for d in project["optional-dependencies"]["dev"]]
    declared_dev = {canonicalize_name(r.name) for r in dev}

    runtime_pins, dev_pins = _pins("requirements.txt"), _pins("requirements-dev.txt")
    # requirements.txt may carry test runners the platform's test phase uses (pytest, responses): dev ones.
    assert set(runtime_pins) - declared - declared_dev == set()
    assert set(dev_pins) - declared_dev == set()
    assert set(runtime_pins) & set(dev_pins) == set(), "a package pinned in both files"
    assert _unsatisfied(dev, runtime_pins | dev_pins) == []


def test_the_python_version_of_the_platform_is_one_the_project_supports():
    platform = Version((ROOT / ".python-version").read_text().strip())
    assert SpecifierSet(_project()["requires-python"]).contains(platform)
