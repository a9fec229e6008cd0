"""Replays run in the rollout tests' workspace (`rollout_ws`, with its `policy_yaml`)."""

from rollout.conftest import policy_yaml, rollout_ws

__all__ = ["policy_yaml", "rollout_ws"]
