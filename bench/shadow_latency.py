"""Does a model's shadow p99 predict the p99 it shows when served? Both measured in one run.

    .venv/bin/python bench/shadow_latency.py [--rate 150] [--seconds 10] [--rounds 6]
                                             [--models gbr,hgb,lgbm,fixed]

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
    lgbm1  (not by default) lgbm with n_jobs=1: LightGBM's thread count apart from the rest

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
    frame = pd.DataFrame(rng.normal(size=(2000, len(FEATURES))), columns=FEATURES)
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
    from pitstop.rollout.routes import route
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
    """One window of steady load on one gateway: the challenger's latencies (ms) per role."""

    latencies: dict[str, list[float]]
    skipped: dict[str, float] = field(default_factory=dict)  # shadow requests skipped, by reason

    def p99(self, role: str) -> float:
        return p99(self.latencies.get(role, []))


def p99(values: list[float]) -> float:
    """Row-weighted, as `gather.latency_quantiles` weighs them (a batch's rows share its call's time)."""
    return float(np.percentile(values, 99)) if values else float("nan")


def challenger_latencies(path: Path, since: float, until: float) -> dict[str, list[float]]:
    """The challenger's successful predictions' latency_ms per role between two event times."""
    import sqlalchemy as sa

    from pitstop.store.tables import predictions
    from pitstop.workspace import Workspace

    with Workspace(path) as ws, ws.reading() as conn:
        rows = conn.execute(
            sa.select(predictions.c.role, predictions.c.latency_ms).where(
                predictions.c.arm == "challenger",
                predictions.c.error.is_(None),
                predictions.c.time >= since,
                predictions.c.time < until,
            )
        ).all()
    out: dict[str, list[float]] = {}
    for role, latency in rows:
        out.setdefault(role, []).append(float(latency))
    return out


def measure(server: http.Server, path: Path, args: argparse.Namespace) -> Window:
    """One window of steady load on one gateway."""
    bodies = http.request_bodies(seed=int(time.time()))
    since, skipped = time.time() + args.warmup, shadow_skipped(server.port)
    asyncio.run(http.generate(server, args.connections, args.seconds, args.warmup, bodies, rate=args.rate))
    until = time.time()
    time.sleep(1.5)  # the prediction log flushes every 0.5 s; shadow calls end within their timeout
    after = shadow_skipped(server.port)
    return Window(
        challenger_latencies(path, since, until),
        {reason: n - skipped.get(reason, 0) for reason, n in after.items() if n > skipped.get(reason, 0)},
    )


def shadow_skipped(port: int) -> dict[str, float]:
    """The gateway's shadow requests skipped so far, by reason (from its /metrics)."""
    import re
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    out: dict[str, float] = {}
    pattern = r'pitstop_shadow_skipped_total\{[^}]*reason="(\w+)"[^}]*\} ([0-9.e+]+)'
    for reason, value in re.findall(pattern, text):
        out[reason] = out.get(reason, 0.0) + float(value)
    return out


@dataclass
class Round:
    """One round of one challenger: a window on the shadow gateway and one on the split gateway."""

    shadow: Window
    split: Window

    @property
    def timed(self) -> float:
        """The p99 the shadow verdict now reads (role timing) over the served challenger's p99."""
        return self.shadow.p99("timing") / self.split.p99("served")

    @property
    def batched(self) -> float:
        """The p99 it read before (the shadow's own calls) over the served challenger's p99."""
        return self.shadow.p99("shadow") / self.split.p99("served")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gbr,hgb,lgbm,fixed", help="challengers to measure, in order")
    parser.add_argument("--rate", type=float, default=150.0, help="steady requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per window")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each window")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per model (one window per gateway)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--serving", default="", help="more serving settings (YAML, 2-space indent)")
    args = parser.parse_args()
    models = args.models.split(",")
    results: dict[str, list[Round]] = {}
    loads = [os.getloadavg()[0]]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="pitstop-shadow-latency-") as folder:
        setup = build_workspace(Path(folder), models, args.serving)
        for name in models:
            version = setup["versions"][name]
            shadow_path = copy_routed(setup["path"], Path(folder) / f"{name}-shadow", version, shadow=True)
            split_path = copy_routed(setup["path"], Path(folder) / f"{name}-split", version, shadow=False)
            results[name] = []
            with ExitStack() as servers:
                gateways = {
                    "shadow": (servers.enter_context(_server(shadow_path)), shadow_path),
                    "split": (servers.enter_context(_server(split_path)), split_path),
                }
                for round_ in range(args.rounds):
                    order = ["shadow", "split"] if round_ % 2 == 0 else ["split", "shadow"]
                    windows = {key: measure(*gateways[key], args) for key in order}
                    results[name].append(Round(windows["shadow"], windows["split"]))
                    loads.append(os.getloadavg()[0])
                    print(f"{name} round {round_ + 1}: {_describe(results[name][-1])}", file=sys.stderr)
    report(results, args, started, loads)


def _server(path: Path) -> http.Server:
    # a busy machine starves the shadow's idle-priority process while it loads the model
    return http.Server(http.PITSTOP, str(path), {"PITSTOP_DATABASE_URL": ""}, None, start_timeout=600)


def _describe(round_: Round) -> str:
    shadow, split = round_.shadow, round_.split
    return (
        f"timed p99 {shadow.p99('timing'):.2f} ms ({len(shadow.latencies.get('timing', []))} calls), "
        f"shadow batches p99 {shadow.p99('shadow'):.2f} ms (skipped {shadow.skipped or 0}), "
        f"served p99 {split.p99('served'):.2f} ms ({len(split.latencies.get('served', []))} records); "
        f"timed / served {round_.timed:.2f}, batched / served {round_.batched:.2f}"
    )


def _pooled(rounds: list[Round], window: str, role: str) -> float:
    return p99([v for r in rounds for v in getattr(r, window).latencies.get(role, [])])


def report(
    results: dict[str, list[Round]], args: argparse.Namespace, started: str, loads: list[float]
) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(
        f"\n{started}; {machine}; 1-minute load average {min(loads):.1f}-{max(loads):.1f} over the run; "
        f"{args.rate:g} req/s steady; per challenger {args.rounds} rounds of one {args.seconds:g} s window "
        f"per gateway (order alternating); challenger served to {SHARE:.0%} of users in the split\n"
    )
    print(
        "| challenger | served p99 ms | timed p99 ms (role timing) | timed / served: pooled, median "
        "(range over rounds) | rounds within ±25 % | shadow batches p99 ms | batched / served: pooled, "
        "median (range) |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    for name, rounds in results.items():
        served, timed, batched = (
            _pooled(rounds, "split", "served"),
            _pooled(rounds, "shadow", "timing"),
            _pooled(rounds, "shadow", "shadow"),
        )
        new, old = [r.timed for r in rounds], [r.batched for r in rounds]
        inside = sum(0.75 <= ratio <= 1.25 for ratio in new)
        print(
            f"| {name} | {served:.2f} | {timed:.2f} | {timed / served:.2f}, {statistics.median(new):.2f} "
            f"({min(new):.2f}-{max(new):.2f}) | {inside} of {len(new)} | {batched:.2f} | "
            f"{batched / served:.2f}, {statistics.median(old):.2f} ({min(old):.2f}-{max(old):.2f}) |"
        )


if __name__ == "__main__":
    main()
