"""Trainers the demo uses; any `package.module:function` with this signature works with `pitstop train`."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline


def gradient_boosting(X: pd.DataFrame, y: pd.Series, params: dict[str, Any]) -> Any:
    """Gradient-boosted trees, deterministic for a given `seed`.

    `drop` (comma-separated columns) trains without those features, as when a feature's source was
    missing from the training export; `lookup_pool` (with `lookup_wave_ms`) wraps it in `PooledLookupModel`,
    `lookup_rate` in `ThrottledLookupModel`.
    """
    model = HistGradientBoostingRegressor(
        max_iter=int(params.get("max_iter", 200)),
        learning_rate=float(params.get("learning_rate", 0.1)),
        max_leaf_nodes=int(params.get("max_leaf_nodes", 31)),
        random_state=int(params.get("seed", 0)),
    )
    dropped = [c for c in str(params.get("drop", "")).split(",") if c]
    fitted: Any = model
    if dropped:
        keep = ColumnTransformer([("keep", "passthrough", [c for c in X.columns if c not in dropped])])
        fitted = Pipeline([("select", keep), ("model", model)])
    fitted.fit(X, y)
    pool = int(params.get("lookup_pool", 0))
    if pool > 0:
        return PooledLookupModel(fitted, pool, float(params.get("lookup_wave_ms", 5.0)))
    rate = float(params.get("lookup_rate", 0.0))
    return ThrottledLookupModel(fitted, rate) if rate > 0 else fitted


def linear_on(X: pd.DataFrame, y: pd.Series, params: dict[str, Any]) -> Pipeline:
    """A linear model on a subset of the columns (`columns`, comma-separated; default all)."""
    wanted = str(params.get("columns", ",".join(X.columns))).split(",")
    select = ColumnTransformer([("keep", "passthrough", wanted)], remainder="drop")
    return Pipeline([("select", select), ("linear", LinearRegression())]).fit(X, y)


class PooledLookupModel:
    """A model whose online feature lookup has a pool of `pool` connections: a batch's rows are looked
    up in waves of `pool`, each wave after the first taking `wave_ms`. Invisible while batches are
    small; slow once they outgrow the pool as traffic grows. Bulk scoring (more rows than any online
    batch, as the offline gate does) reads features from the warehouse instead and never waits."""

    ONLINE_BATCH_LIMIT = 64

    def __init__(self, model: Any, pool: int, wave_ms: float) -> None:
        self.model, self.pool, self.wave_ms = model, pool, wave_ms
        self.feature_names_in_ = getattr(model, "feature_names_in_", None)

    def predict(self, X: Any) -> npt.NDArray[np.float64]:
        if len(X) <= self.ONLINE_BATCH_LIMIT:
            waves = -(-len(X) // self.pool)  # ceiling division
            time.sleep(self.wave_ms * max(0, waves - 1) / 1000)
        return np.asarray(self.model.predict(X), dtype=float)


class ThrottledLookupModel:
    """A model whose online feature service allows `rate` lookups per second with bursts of `burst`
    (a token bucket): a sliver of traffic never waits; a sustained rate above it queues, and latency
    grows with the traffic share. Bulk scoring (more rows than any online batch) reads features from
    the warehouse and is not throttled."""

    ONLINE_BATCH_LIMIT = 64

    def __init__(self, model: Any, rate: float, burst: float = 20.0) -> None:
        self.model, self.rate, self.burst = model, rate, burst
        self.feature_names_in_ = getattr(model, "feature_names_in_", None)
        self._tokens, self._checked = burst, 0.0

    def __getstate__(self) -> dict[str, Any]:
        # a clock reading means nothing in another process: start with a full bucket there
        return {**self.__dict__, "_tokens": self.burst, "_checked": 0.0}

    def predict(self, X: Any) -> npt.NDArray[np.float64]:
        if len(X) <= self.ONLINE_BATCH_LIMIT:
            now = time.monotonic()
            refill = (now - self._checked) * self.rate if self._checked else self.burst
            self._tokens = min(self.burst, self._tokens + refill) - len(X)  # negative: lookups owed
            self._checked = now
            time.sleep(max(0.0, -self._tokens / self.rate))
        return np.asarray(self.model.predict(X), dtype=float)
