"""Stages 3-5: one auditable state machine from the offline gate to champion, or a stop with evidence.

`phases` names the states, `state` is a rollout as the decision sees it, `evidence` the numbers it sees,
`decide` the pure decision (one small function per phase), `guardrails` the harm checks shared by the
A/B test and the ramp; `gather` reads evidence from the prediction log by SQL aggregation, `records`
reads and writes rollout rows, `apply` turns a decision into one transaction, `lease` elects the single
acting controller, `controller` is the loop, `actions` the start and manual overrides.
"""
