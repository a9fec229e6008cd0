"""The CLI tests use the gateway tests' workspace (`served`) and the rollout tests' (`rollout_ws`)."""

from rollout.conftest import policy_yaml, rollout_ws
from serving.conftest import served

__all__ = ["policy_yaml", "rollout_ws", "served"]
