"""Running the gateway under uvicorn (uvloop, httptools), one process or `workers` processes."""

from __future__ import annotations

import copy
import gc
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from pitstop.serving.metrics import MULTIPROC_ENV

FACTORY = "pitstop.http.server:app_from_env"


def app_from_env() -> Any:
    """The uvicorn factory: `app.app_from_env`, its workspace opened as a service's.

    A service's statements are bounded by `store.statement_timeout`, and its workspace opens while
    the store is down, so the gateway can start from its routing cache (`Gateway.start`).
    """
    from pitstop.context import service_workspaces
    from pitstop.http import app

    with service_workspaces():
        return app.app_from_env()


def tune_runtime(young_threshold: int = 10_000, switch_interval: float = 0.001) -> None:
    """Tune the interpreter for serving, once the models are loaded.

    Garbage collection: under load a gateway allocates many short-lived containers; with Python's
    defaults the collector runs often and, in its full passes, re-scans every long-lived object
    (pandas, scikit-learn, the models). In the benchmark that cost a third of the throughput and
    caused p99 pauses of 100+ ms. Freezing the startup heap and collecting the young generation less
    often removes both.

    Switch interval: model threads (champion, shadow, log writer) share the interpreter lock with the
    event loop; a shorter interval (1 ms instead of 5 ms) lets the loop take it back sooner, which
    shortens the latency tail.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
    sys.setswitchinterval(switch_interval)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, with pitstop's own loggers (routing switches, shadow circuits, the prediction
    log) on its stderr handler at `level`: uvicorn configures only its own loggers, so without this
    pitstop's lines went nowhere below WARNING."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["pitstop"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def run(
    workspace: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM; on either, requests in flight finish and the prediction log is flushed.

    With several workers and no PROMETHEUS_MULTIPROC_DIR, a fresh folder is used so that `/metrics`
    on any worker reports the sum over all workers.
    """
    import uvicorn

    os.environ["PITSTOP_WORKSPACE"] = str(workspace)
    metrics_dir = None
    if workers > 1 and not os.environ.get(MULTIPROC_ENV):
        metrics_dir = tempfile.mkdtemp(prefix="pitstop-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        uvicorn.run(
            FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            ws="none",
            log_level=log_level,
            log_config=log_config(log_level),
            access_log=access_log,
            timeout_graceful_shutdown=30,
        )
    finally:
        if metrics_dir is not None:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)
