"""The HTTP edge: the gateway, the rollout status and overrides, and the dashboard over FastAPI.

`app` wires a `Gateway` into an application, `payloads` defines every request body (the validation
and the OpenAPI document come from the same definitions), `auth` checks tokens, `rollouts` serves the
rollout operations, and `server` runs it all under uvicorn (`pitstop serve`).
"""
