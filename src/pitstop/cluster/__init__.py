"""Way B on Kubernetes (`routing.provider: kubernetes`): one Deployment and Service per routed model
version, and a stable Service per model whose selector the leading controller switches.

`objects` says, without I/O, what the cluster should hold and whether an observed version is ready;
`api` makes the Kubernetes calls (kr8s); `reconcile` brings the cluster to the store's routing after
each controller round and records every step.
"""
