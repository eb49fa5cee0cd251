"""Serving benchmark: bounded closed-loop HTTP load on loopback against `openmindspore.serve`.

One run measures, on the same machine, in one Ray cluster, **interleaved** (every round visits every
server once per concurrency level; ``--rounds`` rounds; the medians over rounds are reported):

1. a MindSpore CNN (digits, 8x8) behind our server **with** dynamic batching (max-batch 32,
   max-delay 2 ms) and **without** (max-batch 1), at concurrency 1, 8, 32, 64;
2. the same checkpoint behind a plain Ray Serve deployment using ``@serve.batch``
   (max_batch_size 32, batch_wait_timeout_s 0.002; same JSON parsing code) reached through Ray
   Serve's HTTP proxy, same concurrencies;
3. per-request overhead: a trivial model (numpy identity) at concurrency 1 — ours (``dispatch="direct"``: the
   replica's local Unix-socket channel), ours with ``dispatch="actor"`` (one Ray actor call per batch), ours with
   ``dispatch="handle"`` (DeploymentHandle router), plain Ray Serve;
4. protocols (``_serving_extra.protocols``): JSON REST vs binary REST (binary tensor extension) vs gRPC
   (raw contents) to an identity model on one 1x3x224x224 FP32 input, interleaved, medians over rounds;
5. failover (``_serving_extra.failover``): a server with ``--frontends 2`` and a CNN with 2 replicas under
   closed-loop load from plain HTTP users and ``Client`` users, for ``--failover-seconds`` each: SIGKILL of a
   front end, SIGKILL of a model replica, a version switch + rollback; counts of failures of each kind.

Each point sends requests from ``C`` concurrent aiohttp clients for ``--seconds`` and prints one JSON
line; summary lines compare medians measured in this run. The 1-minute load average is printed with
every point (the machine may be shared).

    GLOG_v=3 .venv/bin/python benchmarks/serving.py [--seconds 3] [--rounds 3] [--concurrency 1,8,32,64]
        [--sections batching,overhead,protocols,failover] [--failover-seconds 20]
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
            try:
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    status = str(r.status)
            except (TimeoutError, aiohttp.ClientError) as e:  # counted, never fatal to the run
                status = type(e).__name__
            if status == "200":
                lat.append(time.perf_counter() - t0)
            else:
                errors[status] = errors.get(status, 0) + 1

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as s:
        for _ in range(3):  # warm the connections and the path
            async with s.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    a = np.asarray(lat) * 1000.0
    return {
        "requests": len(lat),
        "errors": errors,
        "throughput_rps": round(len(lat) / wall, 1),
        "p50_ms": round(float(np.percentile(a, 50)), 2) if len(a) else None,
        "p95_ms": round(float(np.percentile(a, 95)), 2) if len(a) else None,
        "p99_ms": round(float(np.percentile(a, 99)), 2) if len(a) else None,
    }


def measure(url: str, body: bytes, concurrency: int, seconds: float, **labels) -> dict:
    res = asyncio.run(_load(url, body, concurrency, seconds, max_requests=200_000))
    row = {"bench": "serving", "concurrency": concurrency, **labels, **res, "load_avg_1m": round(os.getloadavg()[0], 1)}
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
            from openmindspore.serve.registry import load_predictor

            self.p = load_predictor(src)
            self.p.warmup()

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=wait_s)
        async def run(self, xs: list[np.ndarray]) -> list[dict]:
            out = self.p.predict({self.p.inputs[0].name: np.concatenate(xs)})
            res, start = [], 0
            for x in xs:
                res.append({k: v[start : start + len(x)] for k, v in out.items()})
                start += len(x)
            return res

        async def __call__(self, request: Request) -> Response:
            from openmindspore.serve.protocol import encode_infer_response, parse_infer_request

            req = parse_infer_request(await request.body(), self.p.inputs, self.p.outputs)
            out = await self.run(next(iter(req.inputs.values())))
            return Response(json.dumps(encode_infer_response("m", "1", out)).encode(), media_type="application/json")

    return PlainBatched.bind(source)


def _median_row(rows: list[dict]) -> dict:
    """Median over rounds of throughput and of each latency percentile (errors summed)."""
    out = dict(rows[0])
    for k in ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "load_avg_1m"):
        vals = [r[k] for r in rows if r[k] is not None]
        out[k] = round(float(np.median(vals)), 2) if vals else None
    out["requests"] = sum(r["requests"] for r in rows)
    errs: dict[str, int] = {}
    for r in rows:
        for code, n in r["errors"].items():
            errs[code] = errs.get(code, 0) + n
    out["errors"], out["rounds"] = errs, len(rows)
    out["round_throughputs"] = [r["throughput_rps"] for r in rows]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="load duration per point")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of every point")
    ap.add_argument("--concurrency", default="1,8,32,64")
    ap.add_argument("--max-delay-ms", type=float, default=2.0)
    ap.add_argument("--sections", default="batching,overhead,protocols,failover")
    ap.add_argument("--protocol-concurrency", default="1,8", help="concurrency levels of the protocols section")
    ap.add_argument("--failover-seconds", type=float, default=20.0, help="load window of each failover scenario")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    levels = [int(c) for c in args.concurrency.split(",")]
    if not all(1 <= c <= 64 for c in levels):
        sys.exit("concurrency levels must be in 1..64")

    from ray import serve

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "serve"))  # http_load
    from _serving_extra import failover, protocols

    from oms_testing import free_port
    from openmindspore.data import load_dataset
    from openmindspore.engine import get_engine
    from openmindspore.serve import Server
    from openmindspore.train import config_from_dict, train

    tmp = Path(tempfile.mkdtemp(prefix="oms_bench_serving_"))
    run, run2 = tmp / "cnn", tmp / "cnn2"
    cfg = {"dataset": "digits", "model": {"name": "cnn"}, "steps": 3, "batch_size": 32}
    if sections & {"batching", "failover"}:  # the overhead and protocols sections need no trained model
        train(config_from_dict(cfg), out_dir=run)
    if "failover" in sections:
        train(config_from_dict({**cfg, "seed": 1}), out_dir=run2)
    x1 = load_dataset("digits").x_test[:1].astype(np.float32)
    cnn_body = json.dumps(
        {"inputs": [{"name": "x", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": x1.reshape(-1).tolist()}]}
    ).encode()
    id_body = json.dumps(
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    ).encode()

    # plain Ray Serve needs its HTTP proxy: start Serve with it first; our front ends bind their own ports
    engine = get_engine("ray")
    engine.start(num_cpus=4)
    plain_port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": plain_port}, logging_config={"log_level": "WARNING"})
    plain_url = f"http://127.0.0.1:{plain_port}"
    srv = Server(port=free_port(), num_cpus=4, grpc_port=free_port())
    srv_h = Server(port=free_port(), num_cpus=4, dispatch="handle")
    srv_a = Server(port=free_port(), num_cpus=4, dispatch="actor")
    srv_f = Server(port=free_port(), num_cpus=4, frontends=2)
    rows: dict[tuple[str, int], list[dict]] = {}
    try:
        srv.start()
        if "batching" in sections:
            srv.deploy("cnn-batch", str(run), batching={"max_batch": 32, "max_delay_ms": args.max_delay_ms})
            srv.deploy("cnn-nobatch", str(run), batching={"max_batch": 1, "max_delay_ms": 0})
            serve.run(_plain_app(str(run), 32, args.max_delay_ms / 1000), name="plain-cnn", route_prefix="/plain-cnn")
        if "overhead" in sections:
            srv_h.start()
            srv_a.start()
            one = {"max_batch": 1, "max_delay_ms": 0}
            srv.deploy("identity", "builtin:identity?dim=4", batching=one)
            srv_h.deploy("identity-h", "builtin:identity?dim=4", batching=one)
            srv_a.deploy("identity-a", "builtin:identity?dim=4", batching=one)
            serve.run(
                _plain_app("builtin:identity?dim=4", 1, 0.0), name="plain-identity", route_prefix="/plain-identity"
            )
        if "protocols" in sections:
            srv.deploy("image", "builtin:identity?shape=3x224x224", batching={"max_batch": 8, "max_delay_ms": 0})
        emit(
            {
                "bench": "serving",
                "event": "ready",
                "url": srv.url,
                "plain_url": plain_url,
                "cpus": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
        cnn = [
            ("oms-batched", srv.url + "/v2/models/cnn-batch/infer"),
            ("oms-unbatched", srv.url + "/v2/models/cnn-nobatch/infer"),
            ("plain-ray-serve-batch", plain_url + "/plain-cnn"),
        ]
        trivial = [
            ("oms", srv.url + "/v2/models/identity/infer"),
            ("oms-actor-dispatch", srv_a.url + "/v2/models/identity-a/infer"),
            ("oms-handle-dispatch", srv_h.url + "/v2/models/identity-h/infer"),
            ("plain-ray-serve", plain_url + "/plain-identity"),
        ]
        for rnd in range(args.rounds):
            if "overhead" in sections:
                for name, url in trivial if rnd % 2 == 0 else trivial[::-1]:
                    rows.setdefault((name, 0), []).append(
                        measure(url, id_body, 1, args.seconds, server=name, model="identity", round=rnd)
                    )
            if "batching" in sections:
                for c in levels:
                    for name, url in cnn if rnd % 2 == 0 else cnn[::-1]:
                        rows.setdefault((name, c), []).append(
                            measure(url, cnn_body, c, args.seconds, server=name, model="cnn", round=rnd)
                        )
        if "protocols" in sections:
            plevels = [int(c) for c in args.protocol_concurrency.split(",")]
            protocols(srv, emit, args.seconds, args.rounds, plevels)
        if "failover" in sections:
            srv_f.start()
            srv_f.deploy("cnn", str(run), replicas=2, batching={"max_batch": 32, "max_delay_ms": args.max_delay_ms})
            failover(srv_f, str(run2), emit, args.failover_seconds, x1)
    finally:
        srv_f.shutdown()  # the first shutdown stops Serve (every server's applications) and the cluster
        srv_a.shutdown()
        srv_h.shutdown()
        srv.shutdown()
    summarize(rows, levels, sections)
    return 0


def summarize(rows: dict[tuple[str, int], list[dict]], levels: list[int], sections: set[str]) -> None:
    """Median-over-rounds lines and the goals of the batching and overhead sections."""
    med = {k: _median_row(v) for k, v in rows.items()}
    for _key, row in sorted(med.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        emit({**row, "summary": "median_over_rounds"})
    if "batching" in sections:
        c = 32 if 32 in levels else max(levels)
        b, u = med[("oms-batched", c)], med[("oms-unbatched", c)]
        emit(
            {
                "bench": "serving",
                "summary": "dynamic_batching",
                "concurrency": c,
                "throughput_ratio": round(b["throughput_rps"] / max(u["throughput_rps"], 1e-9), 2),
                "p95_batched_ms": b["p95_ms"],
                "p95_unbatched_ms": u["p95_ms"],
                "goal": "ratio >= 3 and p95 no worse",
                "met": b["throughput_rps"] >= 3 * u["throughput_rps"] and b["p95_ms"] <= u["p95_ms"],
            }
        )
        for lvl in levels:
            b, p = med[("oms-batched", lvl)], med[("plain-ray-serve-batch", lvl)]
            emit(
                {
                    "bench": "serving",
                    "summary": "vs_plain_ray_serve_batch",
                    "concurrency": lvl,
                    "ours_rps": b["throughput_rps"],
                    "plain_rps": p["throughput_rps"],
                    "ours_p95_ms": b["p95_ms"],
                    "plain_p95_ms": p["p95_ms"],
                    "goal": "ours at least as fast",
                    "met": b["throughput_rps"] >= p["throughput_rps"],
                }
            )
    if "overhead" in sections:
        ours, hand, plain = med[("oms", 0)], med[("oms-handle-dispatch", 0)], med[("plain-ray-serve", 0)]
        actor = med[("oms-actor-dispatch", 0)]
        emit(
            {
                "bench": "serving",
                "summary": "overhead_trivial_model",
                "p50_ms": ours["p50_ms"],
                "p95_ms": ours["p95_ms"],
                "actor_dispatch_p50_ms": actor["p50_ms"],
                "handle_dispatch_p50_ms": hand["p50_ms"],
                "plain_ray_serve_p50_ms": plain["p50_ms"],
                "goal": "p50 <= 2 ms",
                "met": ours["p50_ms"] <= 2.0,
                "load_avg_1m": ours["load_avg_1m"],
                "under_load": ours["load_avg_1m"] > 3,
            }
        )


if __name__ == "__main__":
    sys.exit(main())
