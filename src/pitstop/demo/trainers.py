"""Trainers the demo uses; any `package.module:function` with this signature works with `pitstop train`."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline


def gradient_boosting(X: pd.DataFrame, y: pd.Series, params: dict[str, Any]) -> HistGradientBoostingRegressor:
    """Gradient-boosted trees; deterministic for a given `seed`."""
    model = HistGradientBoostingRegressor(
        max_iter=int(params.get("max_iter", 200)),
        learning_rate=float(params.get("learning_rate", 0.1)),
        max_leaf_nodes=int(params.get("max_leaf_nodes", 31)),
        random_state=int(params.get("seed", 0)),
    )
    return model.fit(X, y)


def linear_on(X: pd.DataFrame, y: pd.Series, params: dict[str, Any]) -> Pipeline:
    """A linear model on a subset of the columns (`columns`, comma-separated; default all)."""
    wanted = str(params.get("columns", ",".join(X.columns))).split(",")
    select = ColumnTransformer([("keep", "passthrough", wanted)], remainder="drop")
    return Pipeline([("select", select), ("linear", LinearRegression())]).fit(X, y)
