"""Trainers for the input-contract matrix: the kinds of model people bring, each trained by pitstop.

Used as `--trainer contract_models:NAME` (tests put this folder on sys.path, and the door check's
fresh process gets the same path). The model classes are at module level with plain attributes, so
skops stores them (each on its version's type allow-list).
"""

from __future__ import annotations

from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

Params = dict[str, object]


def sklearn_named(X: pd.DataFrame, y: pd.Series, params: Params) -> LinearRegression:
    """Fitted on the DataFrame: it has `feature_names_in_`."""
    return LinearRegression().fit(X, y)


def sklearn_unnamed(X: pd.DataFrame, y: pd.Series, params: Params) -> LinearRegression:
    """Fitted on an array: no feature names, only `n_features_in_`."""
    return LinearRegression().fit(X.to_numpy(dtype=float), y)


def onehot_pipeline(X: pd.DataFrame, y: pd.Series, params: Params) -> Pipeline:
    """A ColumnTransformer selecting the string column `zone` by name."""
    encode = ColumnTransformer(
        [("zone", OneHotEncoder(handle_unknown="ignore"), ["zone"])], remainder="passthrough"
    )
    return Pipeline([("encode", encode), ("fit", Ridge(alpha=0.1))]).fit(X, y)


def lightgbm_categorical(X: pd.DataFrame, y: pd.Series, params: Params) -> lightgbm.LGBMRegressor:
    """Raw LightGBM on a pandas `category` column (`zone`)."""
    assert isinstance(X["zone"].dtype, pd.CategoricalDtype), X.dtypes
    model = lightgbm.LGBMRegressor(n_estimators=20, min_child_samples=5, verbose=-1, random_state=0)
    return model.fit(X, y)


def xgboost_categorical(X: pd.DataFrame, y: pd.Series, params: Params) -> xgboost.XGBRegressor:
    """Raw XGBoost with its native categorical support: it reads a category's codes, so the codes
    must mean the same categories in every batch."""
    assert isinstance(X["zone"].dtype, pd.CategoricalDtype), X.dtypes
    model = xgboost.XGBRegressor(n_estimators=20, max_depth=3, enable_categorical=True, tree_method="hist")
    return model.fit(X, y)


class ZoneMeans:
    """A plain class taking a DataFrame: the mean target of the row's zone plus a slope on `a`."""

    def __init__(self, means: dict[str, float], slope: float) -> None:
        self.means, self.slope = means, slope

    def predict(self, X: pd.DataFrame) -> Any:
        return X["zone"].map(self.means).to_numpy(dtype=float) + self.slope * X["a"].to_numpy()


def frame_class(X: pd.DataFrame, y: pd.Series, params: Params) -> ZoneMeans:
    means = {str(zone): float(value) for zone, value in y.groupby(X["zone"]).mean().items()}
    return ZoneMeans(means, float(np.polyfit(X["a"], y, 1)[0]))


class ArrayWeights:
    """A plain class wanting a numpy array: it indexes columns by position, which a DataFrame refuses."""

    def __init__(self, weights: list[float]) -> None:
        self.weights = weights

    def predict(self, X: Any) -> Any:
        return sum(weight * X[:, i].astype(float) for i, weight in enumerate(self.weights))


def array_class(X: pd.DataFrame, y: pd.Series, params: Params) -> ArrayWeights:
    weights, *_ = np.linalg.lstsq(X.to_numpy(dtype=float), y.to_numpy(), rcond=None)
    return ArrayWeights([float(w) for w in weights])
