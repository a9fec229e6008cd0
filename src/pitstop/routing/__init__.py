"""Routing: which model version answers which user, below serving and rollout.

`table` holds the pure, immutable routing table, the sticky hash and the transitions a rollout or a
person makes; `store` keeps tables in the store and saves the next one with its event; `provider`
is the interface a rollout drives (set routes, get routes, finalize), so a routing layer other than
pitstop's own gateways plugs in without touching the controller.
"""
