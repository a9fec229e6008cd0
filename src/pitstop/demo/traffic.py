"""Live traffic for replay: deliveries after the demo's training data, with labels that arrive late."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from pitstop.demo.data import TARGET, TIME, Scenario, generate_deliveries


def live_traffic(
    start: pd.Timestamp,
    days: float,
    requests: int,
    *,
    seed: int,
    scenario: Scenario | None = None,
    label_delay_minutes: tuple[float, float] = (25.0, 90.0),
) -> pd.DataFrame:
    """`requests` orders over `days` from `start` in the scenario's world (its drift continues, its
    weather applies), with `label` (the real delivery time) known `label_time` after the order."""
    world = scenario or Scenario()
    offset_days = (start - world.start) / pd.Timedelta(days=1)
    if offset_days < 0:
        raise ValueError("live traffic must start after the scenario's start")
    span = replace(world, days=offset_days + days)
    # Generated over the whole span (so the drift is where it would be), then cut to the live window.
    total = int(np.ceil(requests * span.days / days))
    frame = generate_deliveries(total, span, seed=seed)
    frame = frame[frame[TIME] >= start].head(requests).reset_index(drop=True)
    rng = np.random.default_rng(seed + 1)
    delay = rng.uniform(*label_delay_minutes, len(frame))
    frame["label"] = frame[TARGET]
    frame["label_time"] = frame[TIME] + pd.to_timedelta(np.round(delay * 60), unit="s")
    return frame.drop(columns=[TARGET])
