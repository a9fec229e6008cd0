"""A synthetic but realistic delivery-time dataset, generated from a fixed seed.

Delivery time grows with distance (more so in traffic and rain), basket size and kitchen preparation
time; every user has a persistent offset (their address is easy or hard to reach), and the city slowly
gets slower month by month (gradual drift), so a model trained on old data loses accuracy on new data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FEATURES = ["distance_km", "items", "prep_minutes", "traffic", "rain_mm", "hour", "is_weekend"]
TARGET = "delivery_minutes"
TIME = "time"
USER = "user_id"


@dataclass(frozen=True)
class Scenario:
    """Knobs of the generated world."""

    start: pd.Timestamp = field(default_factory=lambda: pd.Timestamp("2026-03-01", tz="UTC"))
    days: float = 240.0
    users: int = 4000
    drift_per_month: float = 0.2  # extra minutes per km, added every 30 days
    noise_minutes: float = 3.0
    rain_probability: float = 0.18  # share of orders placed while it rains
    rain_mean_mm: float = 4.0


def generate_deliveries(rows: int, scenario: Scenario | None = None, seed: int = 7) -> pd.DataFrame:
    """`rows` deliveries spread over the scenario's time span, sorted by time."""
    scenario = scenario or Scenario()
    if rows <= 0:
        raise ValueError("rows must be positive")
    rng = np.random.default_rng(seed)
    offsets = np.sort(np.round(rng.uniform(0, scenario.days * 86400, rows)))
    times = scenario.start + pd.to_timedelta(offsets, unit="s")
    user_effects = rng.normal(0, 2.5, scenario.users)
    # A few users order a lot: Zipf-like popularity.
    popularity = 1.0 / np.arange(1, scenario.users + 1) ** 0.6
    users = rng.choice(scenario.users, size=rows, p=popularity / popularity.sum())
    frame = pd.DataFrame({TIME: times, USER: [f"u{u:05d}" for u in users]})
    frame = frame.join(_features(rng, frame[TIME], scenario))
    frame[TARGET] = delivery_minutes(frame, scenario, user_effects[users]) + rng.normal(
        0, scenario.noise_minutes, rows
    )
    frame[TARGET] = frame[TARGET].clip(lower=5).round(2)
    return frame


def _features(rng: np.random.Generator, times: pd.Series, scenario: Scenario) -> pd.DataFrame:
    rows = len(times)
    hour = times.dt.hour.to_numpy()
    rush = ((hour >= 11) & (hour <= 13)) | ((hour >= 18) & (hour <= 20))
    return pd.DataFrame(
        {
            "distance_km": np.round(rng.lognormal(np.log(3.0), 0.55, rows), 2),
            "items": rng.poisson(2.0, rows) + 1,
            "prep_minutes": np.round(rng.gamma(4.0, 3.0, rows), 1),
            "traffic": np.round(np.clip(0.25 + 0.45 * rush + rng.normal(0, 0.12, rows), 0, 1), 3),
            "rain_mm": np.round(
                np.where(
                    rng.random(rows) < scenario.rain_probability,
                    rng.exponential(scenario.rain_mean_mm, rows),
                    0.0,
                ),
                1,
            ),
            "hour": hour,
            "is_weekend": (times.dt.day_of_week.to_numpy() >= 5).astype(int),
        }
    )


def delivery_minutes(frame: pd.DataFrame, scenario: Scenario, user_effect: np.ndarray) -> np.ndarray:
    """The noiseless truth the models try to learn."""
    months = (frame[TIME] - scenario.start).dt.total_seconds().to_numpy() / (30 * 86400)
    per_km = 2.6 * (1 + 0.7 * frame["traffic"].to_numpy()) + scenario.drift_per_month * months
    per_km = per_km * (1 + 0.03 * frame["rain_mm"].to_numpy())
    return np.asarray(
        6.0
        + per_km * frame["distance_km"].to_numpy()
        + 0.8 * frame["items"].to_numpy()
        + 0.85 * frame["prep_minutes"].to_numpy()
        + 1.5 * frame["is_weekend"].to_numpy()
        + user_effect,
        dtype=float,
    )
