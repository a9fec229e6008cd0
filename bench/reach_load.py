"""The load generator of bench/fleet_reach.py, a process of its own that imports only httpx:

    python bench/reach_load.py PORTS RATE OUT TAG

sends `RATE` predictions a second spread evenly over the gateways on `PORTS` (comma-separated; one
request in flight per gateway) until SIGTERM, then writes one CSV line per request to `OUT`:
request id, gateway index, sent and answered (`time.monotonic()`, one clock for every process on the
machine), HTTP status (0: no answer). `OUT.ready` appears once every gateway has answered once.
"""

from __future__ import annotations

import asyncio
import csv
import signal
import sys
import time
from pathlib import Path

import httpx

MODEL = "reach"


async def load(ports: list[int], rate: float, out: Path, tag: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    rows: list[tuple[str, int, float, float, int]] = []
    every = len(ports) / rate
    answered: set[int] = set()

    async def one(client: httpx.AsyncClient, g: int, port: int) -> None:
        due = time.monotonic()
        n = 0
        while not stop.is_set():
            request_id = f"{tag}-{g}-{n}"
            features = {"a": 0.1 * (n % 7), "b": -0.2}
            body = {"features": features, "user_id": f"u{n % 1000}", "request_id": request_id}
            sent = time.monotonic()
            try:
                answer = await client.post(f"http://127.0.0.1:{port}/v1/models/{MODEL}/predict", json=body)
                status = answer.status_code
            except httpx.HTTPError:
                status = 0
            rows.append((request_id, g, sent, time.monotonic(), status))
            if status == 200 and g not in answered:
                answered.add(g)
                if len(answered) == len(ports):
                    out.with_suffix(".ready").touch()
            n += 1
            due += every
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    limits = httpx.Limits(max_connections=len(ports) * 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(one(client, g, port) for g, port in enumerate(ports)))
    with out.open("w", newline="") as file:
        csv.writer(file).writerows(rows)


if __name__ == "__main__":
    ports, rate, out, tag = sys.argv[1:]
    asyncio.run(load([int(p) for p in ports.split(",")], float(rate), Path(out), tag))
