"""Live traffic for replay: deliveries after the demo's training data, with labels that arrive late."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pitstop.demo.data import TARGET, TIME, Scenario, generate_deliveries


def live_traffic(
    start: pd.Timestamp, days: float, requests: int, *, seed: int, scenario: Scenario | None = None,
    label_delay_minutes: tuple[float, float] = (25.0, 90.0),
) -> pd.DataFrame:
    """`requests` orders over `days` from `start`, in the same world as the training data (its drift
    continues), with `label` (the real delivery time) known `label_time` after the order."""
    base = scenario or Scenario()
    world = Scenario(
        start=base.start, days=base.days, users=base.users, drift_per_month=base.drift_per_month,
        noise_minutes=base.noise_minutes,
    )
    offset_days = (start - world.start) / pd.Timedelta(days=1)
    shifted = Scenario(start=world.start, days=offset_days + days, users=world.users,
                       drift_per_month=world.drift_per_month, noise_minutes=world.noise_minutes)
    # Generate over the whole span so the drift continues, then keep the live window.
    total = int(requests * (offset_days + days) / days)
    frame = generate_deliveries(total, shifted, seed=seed)
    frame = frame[frame[TIME] >= start].head(requests).reset_index(drop=True)
    rng = np.random.default_rng(seed + 1)
    delay = rng.uniform(*label_delay_minutes, len(frame))
    frame["label"] = frame[TARGET]
    frame["label_time"] = frame[TIME] + pd.to_timedelta(np.round(delay * 60), unit="s")
    return frame.drop(columns=[TARGET])
