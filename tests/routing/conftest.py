"""The routing tests route the gateway tests' workspace (`served`)."""

from serving.conftest import served

__all__ = ["served"]
