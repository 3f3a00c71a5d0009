"""The container image's recipe: Dockerfile lint, pinned dependencies, and the wheel it installs.

Images cannot be built here, so the parts are checked one by one: hadolint
passes, the Dockerfile has the shape the Deployment relies on, the pins are
the versions the tests ran against, and the wheel built from the tree installs
into a clean virtualenv and runs (the image's install path).
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support.install import ROOT

DOCKERFILE = ROOT / "Dockerfile"
CONSTRAINTS = ROOT / "constraints.txt"
TEST_CONSTRAINTS = ROOT / "constraints-test.txt"
HADOLINT = ROOT / ".venv" / "bin" / "hadolint"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        instruction, _, arguments = stripped.partition(" ")
        result.append((instruction.upper(), " ".join(arguments.split())))
    return result


def _pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        assert version, f"{path.name}: {line!r} is not pinned with =="
        pins[_normalise(name)] = version
    return pins


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_closure() -> dict[str, str]:
    """fluxd's runtime dependencies and theirs, as installed in the tested environment."""
    return _closure(_project()["dependencies"])


def _test_tools_closure() -> dict[str, str]:
    """The ``test`` extra and its dependencies, less what the runtime already pins."""
    runtime = _runtime_closure()
    tools = _closure(_optional_dependencies()["test"])
    return {name: version for name, version in tools.items() if name not in runtime}


def _closure(requirements: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    pending = [Requirement(r) for r in requirements]
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = _normalise(requirement.name)
        if name in found:
            continue
        distribution = importlib.metadata.distribution(requirement.name)
        found[name] = distribution.version
        pending.extend(Requirement(r) for r in distribution.requires or [])
    return found


def _optional_dependencies() -> dict[str, list[str]]:
    extras: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    return extras


def _project() -> dict[str, list[str]]:
    project: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


# -- Dockerfile ----------------------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_builds_a_wheel_then_installs_it_on_a_slim_python_311() -> None:
    instructions = _instructions()
    stages = [arguments for instruction, arguments in instructions if instruction == "FROM"]
    python_stages = [stage for stage in stages if not stage.startswith("golang:")]
    assert len(python_stages) == 2
    assert all(stage.startswith("python:3.11-slim") for stage in python_stages)
    assert stages[-1] == python_stages[-1]
    runs = [arguments for instruction, arguments in instructions if instruction == "RUN"]
    assert any("pip wheel" in run and "--constraint constraints.txt" in run for run in runs)
    assert any("pip install --no-index" in run for run in runs)
    assert any("apt-get install" in run and " git" in run for run in runs)


def test_the_image_runs_fluxd_as_the_deployments_numeric_user() -> None:
    instructions = _instructions()
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users == ["65532:65532"]
    entrypoint = [
        arguments for instruction, arguments in instructions if instruction == "ENTRYPOINT"
    ]
    assert entrypoint == ['["fluxd", "run"]']
    last_user = max(i for i, (instruction, _) in enumerate(instructions) if instruction == "USER")
    assert all(instruction != "RUN" for instruction, _ in instructions[last_user:])


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1 :] == [
        "!pyproject.toml",
        "!README.md",
        "!constraints.txt",
        "!fluxd/",
        "!engine/",
        "fluxd/**/__pycache__",
    ]
    copied = {
        source
        for instruction, arguments in _instructions()
        if instruction == "COPY" and "--from" not in arguments
        for source in arguments.split()[:-1]
    }
    assert copied == {
        "pyproject.toml",
        "README.md",
        "constraints.txt",
        "fluxd",
        "engine/go.mod",
        "engine/go.sum",
        "engine/main.go",
    }
    # Every file of the engine's module is copied: a new one must be added to the stage.
    assert {f"engine/{p.name}" for p in (ROOT / "engine").iterdir()} <= copied


# -- pinned dependencies ----------------------------------------------------------------


def test_every_runtime_dependency_is_pinned_to_the_tested_version() -> None:
    closure = _runtime_closure()
    expected = "\n".join(f"{name}=={version}" for name, version in sorted(closure.items()))
    assert _pins() == closure, f"constraints.txt is stale; its pins should read:\n{expected}"


def test_every_test_tool_is_pinned_to_the_tested_version() -> None:
    closure = _test_tools_closure()
    expected = "\n".join(f"{name}=={version}" for name, version in sorted(closure.items()))
    assert _pins(TEST_CONSTRAINTS) == closure, (
        f"constraints-test.txt is stale; its pins should read:\n{expected}"
    )


def test_the_make_install_uses_both_pin_files() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt -c constraints-test.txt -e '.[test]'" in makefile


def test_the_pins_satisfy_the_projects_requirements() -> None:
    pins = _pins()
    for line in _project()["dependencies"]:
        requirement = Requirement(line)
        assert requirement.specifier.contains(pins[_normalise(requirement.name)]), line


# -- the wheel ----------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_the_wheel_installs_into_a_clean_virtualenv_and_runs(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "fluxd", source / "fluxd", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    # The build backend comes from the package index, as in the image's build stage.
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("fluxd-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    # Dependencies come from the tested environment (a path entry only: its
    # editable fluxd is not loaded), so what runs is the wheel's fluxd.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "tested-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    version = subprocess.run(
        [str(venv / "bin" / "fluxd"), "version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"fluxd {_project_version()}"
    where = subprocess.run(
        [str(python), "-c", "import fluxd; print(fluxd.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    assert (Path(where).parent / "py.typed").is_file()
    # Every requirement the wheel declares is met by the pinned versions.
    check = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _project_version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version
