"""Serving benchmark: bounded closed-loop HTTP load on loopback against `openmindspore.serve`.

One run measures, on the same machine and in the same process tree:

1. a MindSpore CNN (digits, 8x8) behind our server **with** dynamic batching (max-batch 32,
   max-delay 2 ms) and **without** (max-batch 1), at concurrency 1, 8, 32, 64;
2. the same checkpoint behind a plain Ray Serve deployment using ``@serve.batch``
   (max_batch_size 32, batch_wait_timeout_s 0.002; same JSON parsing code), same concurrencies;
3. per-request overhead: a trivial model (numpy identity) at concurrency 1, ours vs plain Ray Serve.

Each point sends requests from ``C`` concurrent aiohttp clients for ``--seconds`` (default 4) and
prints one JSON line; summary lines compare ratios measured in this run.

    GLOG_v=3 .venv/bin/python benchmarks/serving.py [--seconds 4] [--concurrency 1,8,32,64]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_v", "3")


def emit(obj: dict) -> None:
    print(json.dumps(obj, sort_keys=True), flush=True)


async def _load(url: str, body: bytes, concurrency: int, seconds: float, max_requests: int) -> dict:
    import aiohttp

    lat: list[float] = []
    errors: dict[str, int] = {}
    stop_at = time.perf_counter() + seconds
    sent = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while time.perf_counter() < stop_at and sent < max_requests:
            sent += 1
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                if r.status == 200:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors[str(r.status)] = errors.get(str(r.status), 0) + 1

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as s:
        for _ in range(3):  # warm the connections and the path
            async with s.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    a = np.asarray(lat) * 1000.0
    return {"requests": len(lat), "errors": errors, "throughput_rps": round(len(lat) / wall, 1),
            "p50_ms": round(float(np.percentile(a, 50)), 2) if len(a) else None,
            "p95_ms": round(float(np.percentile(a, 95)), 2) if len(a) else None,
            "p99_ms": round(float(np.percentile(a, 99)), 2) if len(a) else None}


def measure(url: str, body: bytes, concurrency: int, seconds: float, **labels) -> dict:
    res = asyncio.run(_load(url, body, concurrency, seconds, max_requests=200_000))
    row = {"bench": "serving", "concurrency": concurrency, **labels, **res}
    emit(row)
    return row


def _plain_app(source: str, max_batch: int, wait_s: float):
    """The same predictor behind a plain Ray Serve deployment with ``@serve.batch``."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import Response

    @serve.deployment(max_ongoing_requests=1024)
    class PlainBatched:
        def __init__(self, src: str) -> None:
            os.environ.setdefault("GLOG_v", "3")
            from openmindspore.serve.predictor import load_predictor

            self.p = load_predictor(src)
            self.p.warmup()

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=wait_s)
        async def run(self, xs: list[np.ndarray]) -> list[dict]:
            out = self.p.predict({self.p.inputs[0].name: np.concatenate(xs)})
            res, start = [], 0
            for x in xs:
                res.append({k: v[start:start + len(x)] for k, v in out.items()})
                start += len(x)
            return res

        async def __call__(self, request: Request) -> Response:
            from openmindspore.serve.protocol import encode_infer_response, parse_infer_request

            req = parse_infer_request(await request.body(), self.p.inputs, self.p.outputs)
            out = await self.run(next(iter(req.inputs.values())))
            return Response(json.dumps(encode_infer_response("m", "1", out)).encode(), media_type="application/json")

    return PlainBatched.bind(source)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0, help="load duration per point")
    ap.add_argument("--concurrency", default="1,8,32,64")
    ap.add_argument("--max-delay-ms", type=float, default=2.0)
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    if not all(1 <= c <= 64 for c in levels):
        sys.exit("concurrency levels must be in 1..64")

    from ray import serve

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from oms_testing import free_port

    from openmindspore.data import load_dataset
    from openmindspore.serve import Server
    from openmindspore.train import config_from_dict, train

    tmp = Path(tempfile.mkdtemp(prefix="oms_bench_serving_"))
    run = tmp / "cnn"
    train(config_from_dict({"dataset": "digits", "model": {"name": "cnn"}, "steps": 3, "batch_size": 32}), out_dir=run)
    x1 = load_dataset("digits").x_test[:1].astype(np.float32)
    cnn_body = json.dumps({"inputs": [{"name": "x", "shape": [1, 1, 8, 8], "datatype": "FP32",
                                       "data": x1.reshape(-1).tolist()}]}).encode()
    id_body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}).encode()

    srv = Server(port=free_port(), num_cpus=4)
    rows: dict[tuple[str, str, int], dict] = {}
    try:
        srv.start()
        srv.deploy("cnn-batch", str(run), batching={"max_batch": 32, "max_delay_ms": args.max_delay_ms})
        srv.deploy("cnn-nobatch", str(run), batching={"max_batch": 1, "max_delay_ms": 0})
        srv.deploy("identity", "builtin:identity?dim=4", batching={"max_batch": 1, "max_delay_ms": 0})
        serve.run(_plain_app(str(run), 32, args.max_delay_ms / 1000), name="plain-cnn", route_prefix="/plain-cnn")
        serve.run(_plain_app("builtin:identity?dim=4", 1, 0.0), name="plain-identity", route_prefix="/plain-identity")
        emit({"bench": "serving", "event": "ready", "url": srv.url, "cpus": os.cpu_count(),
              "load_avg_1m": round(os.getloadavg()[0], 2)})

        for c in levels:
            for name, path in (("oms-batched", "/v2/models/cnn-batch/infer"), ("oms-unbatched", "/v2/models/cnn-nobatch/infer"),
                               ("plain-ray-serve-batch", "/plain-cnn")):
                rows[(name, "cnn", c)] = measure(srv.url + path, cnn_body, c, args.seconds, server=name, model="cnn")
        for name, path in (("oms", "/v2/models/identity/infer"), ("plain-ray-serve", "/plain-identity")):
            rows[(name, "identity", 1)] = measure(srv.url + path, id_body, 1, args.seconds, server=name,
                                                  model="identity")
    finally:
        srv.shutdown()

    c = 32 if 32 in levels else max(levels)
    b, u, p = rows[("oms-batched", "cnn", c)], rows[("oms-unbatched", "cnn", c)], rows[("plain-ray-serve-batch", "cnn", c)]
    emit({"bench": "serving", "summary": "dynamic_batching", "concurrency": c,
          "throughput_ratio": round(b["throughput_rps"] / max(u["throughput_rps"], 1e-9), 2),
          "p95_batched_ms": b["p95_ms"], "p95_unbatched_ms": u["p95_ms"],
          "goal": "ratio >= 3 and p95 no worse", "met": b["throughput_rps"] >= 3 * u["throughput_rps"] and b["p95_ms"] <= u["p95_ms"]})
    ours, plain = rows[("oms", "identity", 1)], rows[("plain-ray-serve", "identity", 1)]
    emit({"bench": "serving", "summary": "overhead_trivial_model", "p50_ms": ours["p50_ms"],
          "plain_ray_serve_p50_ms": plain["p50_ms"], "goal": "p50 <= 3 ms", "met": ours["p50_ms"] <= 3.0})
    emit({"bench": "serving", "summary": "vs_plain_ray_serve_batch", "concurrency": c,
          "ours_rps": b["throughput_rps"], "plain_rps": p["throughput_rps"], "ours_p95_ms": b["p95_ms"],
          "plain_p95_ms": p["p95_ms"], "goal": "ours at least as fast", "met": b["throughput_rps"] >= p["throughput_rps"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
