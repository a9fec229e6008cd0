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
    missing from the training export; `lookup_pool` (with `lookup_wave_ms`) wraps it in `PooledLookupModel`.
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
    return PooledLookupModel(fitted, pool, float(params.get("lookup_wave_ms", 5.0))) if pool > 0 else fitted


def linear_on(X: pd.DataFrame, y: pd.Series, params: dict[str, Any]) -> Pipeline:
    """A linear model on a subset of the columns (`columns`, comma-separated; default all)."""
    wanted = str(params.get("columns", ",".join(X.columns))).split(",")
    select = ColumnTransformer([("keep", "passthrough", wanted)], remainder="drop")
    return Pipeline([("select", select), ("linear", LinearRegression())]).fit(X, y)


class PooledLookupModel:
    """A model whose feature lookup has a pool of `pool` connections: a batch's rows are looked up in
    waves of `pool`, each wave after the first taking `wave_ms`. Invisible while batches are small;
    slow once they outgrow the pool as traffic grows."""

    def __init__(self, model: Any, pool: int, wave_ms: float) -> None:
        self.model, self.pool, self.wave_ms = model, pool, wave_ms
        self.feature_names_in_ = getattr(model, "feature_names_in_", None)

    def predict(self, X: Any) -> npt.NDArray[np.float64]:
        waves = -(-len(X) // self.pool)  # ceiling division
        time.sleep(self.wave_ms * max(0, waves - 1) / 1000)
        return np.asarray(self.model.predict(X), dtype=float)
