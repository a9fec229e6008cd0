"""What validating a request body costs over decoding its JSON: `payloads.parse_predict` and
`payloads.parse_labels` (pydantic validation, problems worded per field, the gateway's values built)
against `json.loads` of the same bytes, the baseline, in the same run.

Each round times both on the same bytes, one after the other, so the ratio is measured under the
same load; the medians over the rounds are reported.

    PYTHONPATH=src .venv/bin/python bench/body_parsing.py --rounds 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from pitstop.http import payloads

ROW = {f"f{i}": i * 0.5 for i in range(8)}


def bodies() -> dict[str, tuple[bytes, Callable[[bytes], Any]]]:
    one = {"features": ROW, "user_id": "user-1", "request_id": "req-1"}
    batch = {"instances": [{"features": ROW, "user_id": f"u{i}", "request_id": f"r{i}"} for i in range(64)]}
    labels = {
        "labels": [{"request_id": f"r{i}", "label": 1.0, "time": "2026-01-01T00:00:00Z"} for i in range(64)]
    }
    return {
        "predict, one instance": (json.dumps(one).encode(), payloads.parse_predict),
        "predict, 64 instances": (json.dumps(batch).encode(), payloads.parse_predict),
        "labels, 64 labels": (json.dumps(labels).encode(), payloads.parse_labels),
    }


def per_call(function: Callable[[bytes], Any], body: bytes, seconds: float) -> float:
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            function(body)
        calls += 50
    return elapsed / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.5, help="per function per round")
    args = parser.parse_args()
    print(f"{'case':<24} {'json.loads µs':>14} {'parse µs':>9} {'parse / json.loads':>19}")
    for name, (body, parse) in bodies().items():
        parse(body)  # it accepts the body
        decode, validate = [], []
        for _ in range(args.rounds):
            decode.append(per_call(json.loads, body, args.seconds))
            validate.append(per_call(parse, body, args.seconds))
        ratio = statistics.median(v / d for v, d in zip(validate, decode, strict=True))
        print(
            f"{name:<24} {statistics.median(decode) * 1e6:>14.1f} "
            f"{statistics.median(validate) * 1e6:>9.1f} {ratio:>19.2f}"
        )


if __name__ == "__main__":
    main()
