"""The pinned versions (constraints/*.txt) cover every dependency pyproject.toml declares, satisfy
its ranges, and are what CI and both images install. No network needed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCKS = {"cpu": ["cpu", "test", "s3"], "gpu": ["gpu", "s3"], "clip": ["clip"]}


def pins(name: str) -> dict[str, str]:
    found = {}
    for line in (REPO / "constraints" / f"{name}.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            package, version = line.split("==")
            found[canonicalize_name(package)] = version
    return found


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_declared_dependency_is_pinned_within_its_range(lock):
    pinned = pins(lock)
    declared = list(PYPROJECT["project"]["dependencies"])
    for extra in LOCKS[lock]:
        declared += PYPROJECT["project"]["optional-dependencies"][extra]
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is declared in pyproject.toml but not pinned in {lock}.txt: run constraints/lock.sh"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{name}=={pinned[name]} in {lock}.txt is outside pyproject's {requirement.specifier}: run constraints/lock.sh"
        )


def test_ci_and_both_images_install_the_pinned_versions():
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r'pip install [^\n]*-e "\.\[cpu,test\]" -c constraints/cpu\.txt', ci)
    assert re.search(r"pip install [^\n]*--no-deps -c constraints/clip\.txt keras-hub", ci)
    for kind in ("cpu", "gpu"):
        dockerfile = (REPO / "docker" / f"Dockerfile.{kind}").read_text()
        assert "COPY constraints/ constraints/" in dockerfile
        # Every image reaches the object store (STORAGE_URL=s3://..., no shared disk in compose).
        assert f'pip install ".[{kind},s3]" -c constraints/{kind}.txt' in dockerfile
