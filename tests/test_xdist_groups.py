"""`make test` runs on pytest-xdist with `--dist loadgroup`: the tests of one `xdist_group` run on one
process, and the suite's conftest groups the tests sharing a module- or package-scoped fixture, so an
MLflow server or a replayed rollout is built once. Under pytest 9, pytest-xdist 3.8 silently ignored
every group (it writes the group into a node id pytest 9 no longer reads); this holds the pin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GROUPED = """
import os
import pytest

pytestmark = pytest.mark.xdist_group("one")

@pytest.mark.parametrize("n", range(6))
def test_on_one_process(n):
    with open(os.path.join(os.environ["OUT"], f"{n}.txt"), "w") as f:
        f.write(os.environ["PYTEST_XDIST_WORKER"])
"""


def test_an_xdist_group_runs_on_one_process(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:kmock", "-n", "2",
         "--dist", "loadgroup", "-q", "-c", os.devnull, "--rootdir", str(tmp_path),
         str(tmp_path / "test_grouped.py")],
        cwd=tmp_path, env={**os.environ, "OUT": str(out)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    workers = {path.read_text() for path in out.iterdir()}
    assert len(list(out.iterdir())) == 6
    assert len(workers) == 1, workers
