"""Human review's cost on the endpoint: ``/predict`` p99 with a review flow attached vs without.

The same fastText champion (trained on the course's reviews) served in one run without a flow and with
``SAGESTACK_REVIEW_FLOW`` (threshold 0.9: each prediction less confident starts a human loop), alternated
three times (off, on, off, on, off, on) so a drift of this machine's speed hits both; ``/predict`` at 32
clients with no pause (saturation) and pausing 30 ms after each answer (about 1,000 requests/s, the serving
issue's target load), through wrk when installed (else httpx), one validation review per request.
Target: p99 with the flow within 10 % of p99 without. Also printed: the share of requests that started a
loop, and the loops the store holds afterwards (none lost).
Run: .venv/bin/python bench/review.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import httpx
import numpy as np

from serving_http import Measure, off_on, train_and_register
from sagestack.config import load_settings
from sagestack.review import review_store
from sagestack.bento.launch import running_server

CLIENTS = 32
FLOW = "bench-review"
TARGET_OVERHEAD = 0.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="seconds per load")
    args = parser.parse_args()
    for name in ("SAGESTACK_REVIEW_FLOW", "SAGESTACK_CAPTURE"):
        os.environ.pop(name, None)  # the "off" servers must not inherit them
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        settings = load_settings(cwd=tmp, environ={}, home=tmp / "home")
        model_ref, _, _, validation = train_and_register(settings, tmp)
        store = review_store(settings)
        store.create_flow(FLOW, threshold=0.9)
        texts = [line.split(" ", 1)[1].strip() for line in validation.read_text(encoding="utf-8").splitlines()][:200]
        bodies = [json.dumps({"reviews": [t]}) for t in texts]
        measure = Measure(shutil.which("wrk") is not None, args.seconds, tmp)
        print(f"/predict at {CLIENTS} clients, {args.seconds} s per load ({'wrk' if measure.use_wrk else 'httpx'}):")
        print(f"{'server, route':<34} {'load':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        with running_server(settings.replace(review_flow=FLOW), model_ref) as url:
            answers = [httpx.post(f"{url}/predict", content=b, headers={"content-type": "application/json"},
                                  timeout=30).json() for b in bodies]
        unsure = np.mean(["human_review" in a["predictions"][0] for a in answers])
        # Saturation (no pause) and the serving issue's target load (30 ms pauses: about 1,000 requests/s).
        off_on(measure, lambda on: settings.replace(review_flow=FLOW if on else None), model_ref, bodies,
               "review flow", CLIENTS, TARGET_OVERHEAD, pauses_ms=(0, 30))
        progress = store.progress(FLOW)
        print(f"{unsure:.0%} of the 200 reviews start a loop; loops in the store afterwards: {progress['InProgress']:,}")


if __name__ == "__main__":
    main()
