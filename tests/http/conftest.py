"""The HTTP tests serve the gateway tests' workspace (`served`)."""

from serving.conftest import served

__all__ = ["served"]
