"""Notifications: every rollout event and manual override, sent to the configured receivers.

The outbox row is written with the event, in the decision's transaction (`events.record_event`); a
sender (`sender.send_due`, run in the background of `pitstop serve` and `pitstop controller`, or by
`pitstop notify send`) turns it into one delivery per receiver and POSTs it, retrying with backoff.

Modules, one concern each: `topics` (what an event is about), `message` (what every format renders),
`cloudevents` and `slack` (the two formats, each with its receiver), `receivers` (the `Receiver`
protocol and the factory keyed by format), `signing` (HMAC-SHA256 headers and their check), `outbox`
(the store's outbox and delivery log), `sender` (delivery, retries, backoff) and `background` (the
sender's thread).
"""
