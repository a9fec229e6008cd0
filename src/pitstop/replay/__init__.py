"""Replay: recorded traffic through a challenger's rollout on a simulated clock (`pitstop simulate`).

- `traffic`: the traffic table read, checked and put in time order;
- `batched`: the default replay, each controller interval routed and scored in bulk, evidence folded
  in memory (`rollout.ledger`);
- `gateway`: every request through the real gateway and prediction log;
- `run`: `simulate`, which makes the throwaway store, starts the rollout and runs either.
"""

from pitstop.replay.gateway import Replay
from pitstop.replay.run import SimulationResult, peak_rss_bytes, replay_salt, replay_store_url, simulate
from pitstop.replay.traffic import check_pace, load_traffic, prepare_traffic

__all__ = [
    "Replay",
    "SimulationResult",
    "check_pace",
    "load_traffic",
    "peak_rss_bytes",
    "prepare_traffic",
    "replay_salt",
    "replay_store_url",
    "simulate",
]
