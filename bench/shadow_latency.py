"""Does a model's shadow p99 predict the p99 it shows when served? Both measured in one run.

    .venv/bin/python bench/shadow_latency.py [--rate 100] [--seconds 10] [--rounds 4] [--models gbr,hgb,lgbm,fixed]

For each challenger model two real gateways (uvicorn on 127.0.0.1, one worker each, as
bench/gateway.py starts them) serve copies of one workspace: in one the model runs in shadow (the
champion answers every user), in the other it is served to 30 % of users. Both run throughout; each
round loads one, then the other (the order alternates between rounds), at the same steady rate, so a
busier or quieter spell of the shared machine falls on both alike. After each window the prediction
log of that gateway gives the p99 the rules see: the shadow verdict's (`shadow_p99`, what
`decide_shadow` compares with the champion's) and the served challenger's (`served_p99`, what the A/B
and ramp guardrails compare). Their ratio per round, its median and its range are reported; the target
is 0.75-1.25.

Challengers (the champion is a small GradientBoostingRegressor):

    gbr    GradientBoostingRegressor, 300 trees of depth 5 (pure numpy, no native threads)
    hgb    HistGradientBoostingRegressor, 300 iterations (OpenMP, scikit-learn's runtime)
    lgbm   lightgbm.LGBMRegressor, 500 trees, default n_jobs (OpenMP, LightGBM's own thread count)
    fixed  a fixed CPU cost per call whatever its rows (spins on the thread's CPU clock)

The model classes below are pickled under this module's name (`shadow_latency`), so the gateways get
this folder on their PYTHONPATH.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gateway as http  # noqa: E402  the server process and load generator of bench/gateway.py

MODEL = http.MODEL
FEATURES = http.FEATURES
SHARE = 0.3  # the share of users the challenger serves in the split


class FixedCostModel:
    """Costs `seconds` of CPU per call whatever its rows: its latency is the same in a batch of one
    and of hundreds, so shadow and served calls of it should take the same time."""

    def __init__(self, base: Any, seconds: float) -> None:
        self.base, self.seconds = base, seconds
        self.feature_names_in_ = base.feature_names_in_

    def predict(self, frame: Any) -> Any:
        end = time.thread_time() + self.seconds
        while time.thread_time() < end:
            pass
        return self.base.predict(frame)


def challengers(frame: pd.DataFrame, champion: Any) -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor

    X, y = frame[FEATURES], frame["y"]
    this = importlib.import_module("shadow_latency")  # pickled as shadow_latency.FixedCostModel
    out: dict[str, Any] = {
        "gbr": lambda: GradientBoostingRegressor(n_estimators=300, max_depth=5, random_state=1).fit(X, y),
        "hgb": lambda: HistGradientBoostingRegressor(max_iter=300, early_stopping=False, random_state=1).fit(
            X, y
        ),
        "fixed": lambda: this.FixedCostModel(champion, 0.002),
    }
    try:
        import lightgbm

        out["lgbm"] = lambda: lightgbm.LGBMRegressor(n_estimators=500, verbose=-1, random_state=1).fit(X, y)
        out["lgbm1"] = lambda: lightgbm.LGBMRegressor(  # diagnosis: one OpenMP thread per call
            n_estimators=500, verbose=-1, random_state=1, n_jobs=1
        ).fit(X, y)
    except ImportError:
        pass
    return out


def build_workspace(folder: Path, models: list[str], serving: str) -> dict[str, Any]:
    """A SQLite workspace: the champion, and the challengers named in `models` as versions."""
    import joblib
    from sklearn.ensemble import GradientBoostingRegressor

    from pitstop.workspace import Workspace

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(5000, len(FEATURES))), columns=FEATURES)
    frame["y"] = frame @ np.linspace(1, 2, len(FEATURES)) + rng.normal(scale=0.1, size=len(frame))
    frame["time"] = pd.date_range("2026-01-01", periods=len(frame), freq="min", tz="UTC")
    frame.to_csv(folder / "train.csv", index=False)
    os.environ.pop("PITSTOP_DATABASE_URL", None)
    (folder / "ws").mkdir()
    (folder / "ws" / "pitstop.yaml").write_text(f"serving:\n  shadow_concurrency: 1024\n{serving}")
    ws = Workspace.init(folder / "ws")
    ws.add_dataset("train", folder / "train.csv", time_column="time")
    ws.create_model(MODEL, task="regression", target="y", time_column="time", features=FEATURES)
    champion = GradientBoostingRegressor(n_estimators=50, max_depth=3, random_state=0).fit(
        frame[FEATURES], frame["y"]
    )
    joblib.dump(champion, folder / "champion.joblib")
    ws.register(MODEL, folder / "champion.joblib", train_data="train", allow_pickle=True)
    ws.set_champion(MODEL, 1, reason="benchmark")
    versions = {}
    fits = challengers(frame, champion)
    for name in models:
        joblib.dump(fits[name](), folder / f"{name}.joblib")
        versions[name] = ws.register(MODEL, folder / f"{name}.joblib", train_data="train").version
    ws.close()
    return {"path": folder / "ws", "versions": versions}


def copy_routed(source: Path, target: Path, version: int, *, shadow: bool) -> Path:
    from pitstop.serving.routing_store import route
    from pitstop.workspace import Workspace

    shutil.copytree(source, target)
    with Workspace(target) as ws:
        if shadow:
            route(ws, MODEL, mode="shadow", challenger=version, reason="benchmark")
        else:
            route(ws, MODEL, mode="split", challenger=version, share=SHARE, reason="benchmark")
    return target


@dataclass
class Window:
    """The p99 (ms) of one gateway's challenger over one window, as the rules read it, and its counts."""

    p99: float
    records: int  # the challenger's records in the window
    calls: int  # distinct model calls among them (the rows of a batch share their call's time)
    skipped: dict[str, float] = field(default_factory=dict)  # shadow requests skipped, by reason


def challenger_p99(path: Path, role: str, since: float, until: float) -> Window:
    """The row-weighted p99 of the challenger's latency_ms in `role` between two event times, as
    `gather.latency_quantiles` weighs it (rows; a batch's rows share its call's duration)."""
    import sqlalchemy as sa

    from pitstop.store.tables import predictions
    from pitstop.workspace import Workspace

    with Workspace(path) as ws, ws.reading() as conn:
        values = (
            conn.execute(
                sa.select(predictions.c.latency_ms).where(
                    predictions.c.role == role,
                    predictions.c.arm == "challenger",
                    predictions.c.error.is_(None),
                    predictions.c.time >= since,
                    predictions.c.time < until,
                )
            )
            .scalars()
            .all()
        )
    if not values:
        return Window(float("nan"), 0, 0)
    return Window(float(np.percentile(values, 99)), len(values), len(set(values)))


def measure(server: http.Server, path: Path, role: str, args: argparse.Namespace) -> Window:
    """One window of steady load on one gateway; the challenger's p99 in `role` over it."""
    bodies = http.request_bodies(seed=int(time.time()))
    since, skipped = time.time() + args.warmup, shadow_skipped(server.port)
    asyncio.run(http.generate(server, args.connections, args.seconds, args.warmup, bodies, rate=args.rate))
    until = time.time()
    time.sleep(1.5)  # the prediction log flushes every 0.5 s; shadow calls end within their timeout
    window = challenger_p99(path, role, since, until)
    after = shadow_skipped(server.port)
    window.skipped = {reason: n - skipped.get(reason, 0) for reason, n in after.items() if n > skipped.get(reason, 0)}
    return window


def shadow_skipped(port: int) -> dict[str, float]:
    """The gateway's shadow requests skipped so far, by reason (from its /metrics)."""
    import re
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    out: dict[str, float] = {}
    for reason, value in re.findall(r'pitstop_shadow_skipped_total\{[^}]*reason="(\w+)"[^}]*\} ([0-9.e+]+)', text):
        out[reason] = out.get(reason, 0.0) + float(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gbr,hgb,lgbm,fixed", help="challengers to measure, in order")
    parser.add_argument("--rate", type=float, default=100.0, help="steady requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per window")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each window")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per model (one window per gateway)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--serving", default="", help="more serving settings, YAML lines indented by two spaces")
    args = parser.parse_args()
    models = args.models.split(",")
    results: dict[str, list[tuple[Window, Window]]] = {}
    load = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="pitstop-shadow-latency-") as folder:
        setup = build_workspace(Path(folder), models, args.serving)
        for name in models:
            version = setup["versions"][name]
            shadow_path = copy_routed(setup["path"], Path(folder) / f"{name}-shadow", version, shadow=True)
            split_path = copy_routed(setup["path"], Path(folder) / f"{name}-split", version, shadow=False)
            results[name] = []
            with ExitStack() as servers:
                shadow = servers.enter_context(http.Server(http.PITSTOP, str(shadow_path), _env(), None))
                split = servers.enter_context(http.Server(http.PITSTOP, str(split_path), _env(), None))
                for round_ in range(args.rounds):
                    order = [("shadow", shadow, shadow_path), ("served", split, split_path)]
                    windows = {
                        role: measure(server, path, role, args)
                        for role, server, path in (order if round_ % 2 == 0 else order[::-1])
                    }
                    results[name].append((windows["shadow"], windows["served"]))
                    print(f"{name} round {round_ + 1}: {_describe(windows)}", file=sys.stderr, flush=True)
    report(results, args, started, load)


def _env() -> dict[str, str]:
    return {"PITSTOP_DATABASE_URL": ""}


def _describe(windows: dict[str, Window]) -> str:
    shadow, served = windows["shadow"], windows["served"]
    return (
        f"shadow p99 {shadow.p99:.2f} ms ({shadow.records} records, {shadow.calls} calls, "
        f"skipped {shadow.skipped}), "
        f"served p99 {served.p99:.2f} ms ({served.records} records, {served.calls} calls), "
        f"ratio {shadow.p99 / served.p99:.2f}"
    )


def report(
    results: dict[str, list[tuple[Window, Window]]], args: argparse.Namespace, started: str, load: tuple[float, ...]
) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(
        f"\n{started}; {machine}; load average at the start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"(1/5/15 min); {args.rate:g} req/s steady, {args.rounds} rounds of {args.seconds:g} s per gateway, "
        f"challenger served to {SHARE:.0%} of users in the split\n"
    )
    print(
        "| challenger | shadow p99 ms | served p99 ms | shadow / served, median (range) | "
        "within ±25 % |\n|---|---:|---:|---:|---:|"
    )
    for name, rounds in results.items():
        ratios = [shadow.p99 / served.p99 for shadow, served in rounds]
        shadow_p99 = statistics.median(shadow.p99 for shadow, _ in rounds)
        served_p99 = statistics.median(served.p99 for _, served in rounds)
        ratio = statistics.median(ratios)
        inside = sum(0.75 <= r <= 1.25 for r in ratios)
        print(
            f"| {name} | {shadow_p99:.2f} | {served_p99:.2f} | {ratio:.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
            f"| {inside} of {len(ratios)} rounds |"
        )


if __name__ == "__main__":
    main()
