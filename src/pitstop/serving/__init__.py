"""The serving gateway: sticky routing, shadow scoring that cannot hurt users, the prediction log, labels.

`Gateway` is the core (no HTTP); `create_app` serves it with FastAPI; `route` changes routing by hand.
"""

from pitstop.routing.table import Route, RoutingTable, bucket
from pitstop.serving.gateway import Gateway, Instance, PredictionResult
from pitstop.serving.labels import Label

__all__ = ["Gateway", "Instance", "Label", "PredictionResult", "Route", "RoutingTable", "bucket"]
