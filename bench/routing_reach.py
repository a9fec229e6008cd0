"""Routing reach: the time from a routing change's commit until the last of N gateways serves it,
with push (PostgreSQL LISTEN/NOTIFY) and with the poll fallback.

    PITSTOP_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/routing_reach.py [--gateways 4] [--changes 10] [--poll-interval 1s]

The gateways are in-process `Gateway` objects on one event loop: a lower bound on what separate
processes see, without their scheduling (`bench/fleet_reach.py` runs gateway processes under load).
Each change toggles a shadow on and off by `route`; the clock starts when the writing transaction
has committed (`route` returned) and stops when every gateway's table has the new version, checked
every millisecond. With push the gateways poll every 30 s, so only a push can move them in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.linear_model import LinearRegression

from pitstop.config import ServingSettings
from pitstop.rollout.routes import route
from pitstop.serving import Gateway
from pitstop.workspace import Workspace

MODEL = "reach"


def workspace(folder: Path, url: str) -> Workspace:
    """A workspace on `url` whose model has champion v1 and a v2 to shadow."""
    os.environ["PITSTOP_DATABASE_URL"] = url
    Workspace.init(folder / "ws").close()
    ws = Workspace(folder / "ws")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    frame["y"] = 2 * frame["a"] - frame["b"] + rng.normal(scale=0.1, size=200)
    frame["time"] = pd.date_range("2026-01-01", periods=200, freq="h").astype(str)
    frame.to_csv(folder / "train.csv", index=False)
    ws.add_dataset("train", folder / "train.csv", time_column="time")
    ws.create_model(MODEL, task="regression", target="y", features=["a", "b"], time_column="time")
    for seed in (0, 1):
        path = folder / f"v{seed}.joblib"
        joblib.dump(LinearRegression().fit(frame[["a", "b"]] + seed * 0.01, frame["y"]), path)
        ws.register(MODEL, path, train_data="train")
    ws.set_champion(MODEL, 1, reason="bench")
    return ws


async def reach(
    ws: Workspace, folder: Path, gateways: int, changes: int, push: bool, poll: str
) -> list[float]:
    settings = ServingSettings.model_validate(
        {"poll_interval": "30s" if push else poll, "push": push, "shadow_process": False}
    )
    fleet = [Gateway(ws, settings=settings, cache_dir=folder / f"cache-{i}") for i in range(gateways)]
    for gateway in fleet:
        await gateway.start()
    try:
        await asyncio.sleep(1.0)  # every listener connected
        seconds = []
        for i in range(changes):
            how = {"mode": "shadow", "challenger": 2} if i % 2 == 0 else {"mode": "off"}
            table = await asyncio.to_thread(route, ws, MODEL, reason="bench", **how)
            committed = time.perf_counter()
            while any(g.routing(MODEL).version < table.version for g in fleet):
                await asyncio.sleep(0.001)
            seconds.append(time.perf_counter() - committed)
        return seconds
    finally:
        for gateway in fleet:
            await gateway.stop()


def describe(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return f"{name:>5}: p50 {statistics.median(ms):7.1f} ms  p100 {ms[-1]:7.1f} ms  ({len(ms)} changes)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=4)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--poll-interval", default="1s")
    args = parser.parse_args()
    base = os.environ.get("PITSTOP_BENCH_DATABASE_URL") or os.environ.get("PITSTOP_TEST_DATABASE_URL")
    if not base:
        sys.exit("set PITSTOP_TEST_DATABASE_URL to a PostgreSQL server: push needs one")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            ws = workspace(folder, f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}")
            try:
                for name, push in (("push", True), ("poll", False)):
                    seconds = asyncio.run(
                        reach(ws, folder, args.gateways, args.changes, push, args.poll_interval)
                    )
                    print(describe(name, seconds))
            finally:
                ws.close()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


if __name__ == "__main__":
    main()
