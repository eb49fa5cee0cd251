"""Sections of ``benchmarks/serving.py`` added for issue 21: protocols (JSON REST vs binary REST vs gRPC on a
1x3x224x224 tensor) and failover (front-end SIGKILL, model-replica SIGKILL, version switch under load with
``--frontends 2``). Each function emits one JSON line per result and returns its summary rows."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _lat(lat: list[float], n_ok: int, wall: float, errors: dict[str, int]) -> dict[str, Any]:
    a = np.asarray(lat) * 1000.0
    return {
        "requests": n_ok,
        "errors": errors,
        "throughput_rps": round(n_ok / wall, 1),
        "p50_ms": round(float(np.percentile(a, 50)), 2) if len(a) else None,
        "p95_ms": round(float(np.percentile(a, 95)), 2) if len(a) else None,
    }


async def _rest(url: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float) -> dict:
    import aiohttp

    lat: list[float] = []
    errors: dict[str, int] = {}
    stop_at = time.perf_counter() + seconds

    async def worker(s: aiohttp.ClientSession) -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                async with s.post(url, data=body, headers=headers) as r:
                    await r.read()
                    status = str(r.status)
            except (TimeoutError, aiohttp.ClientError) as e:
                status = type(e).__name__
            if status == "200":
                lat.append(time.perf_counter() - t0)
            else:
                errors[status] = errors.get(status, 0) + 1

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as s:
        async with s.post(url, data=body, headers=headers) as r:  # warm the path
            assert r.status == 200, await r.text()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return _lat(lat, len(lat), wall, errors)


async def _grpc(target: str, request: Any, concurrency: int, seconds: float) -> dict:
    import grpc

    from openmindspore.serve._proto import grpc_predict_v2_pb2_grpc as pb_grpc

    lat: list[float] = []
    errors: dict[str, int] = {}
    stop_at = time.perf_counter() + seconds
    opts = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    async with grpc.aio.insecure_channel(target, options=opts) as ch:
        stub = pb_grpc.GRPCInferenceServiceStub(ch)
        await stub.ModelInfer(request)

        async def worker() -> None:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    await stub.ModelInfer(request, timeout=120)
                    lat.append(time.perf_counter() - t0)
                except grpc.aio.AioRpcError as e:
                    errors[e.code().name] = errors.get(e.code().name, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return _lat(lat, len(lat), wall, errors)


def protocols(srv: Any, emit: Callable[[dict], None], seconds: float, rounds: int, levels: list[int]) -> list[dict]:
    """JSON REST, binary REST and gRPC (raw contents) to an identity model on a 1x3x224x224 FP32 input."""
    from openmindspore.serve._proto import grpc_predict_v2_pb2 as pb
    from openmindspore.serve.binary import encode_request

    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    url = srv.url + "/v2/models/image/infer"
    json_body, json_headers = encode_request({"x": x}, binary=False)
    bin_body, bin_headers = encode_request({"x": x}, binary=True)
    req = pb.ModelInferRequest(model_name="image")
    req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    req.raw_input_contents.append(x.tobytes())
    ways: list[tuple[str, Callable[[int], Any]]] = [
        ("rest-json", lambda c: _rest(url, json_body, json_headers, c, seconds)),
        ("rest-binary", lambda c: _rest(url, bin_body, bin_headers, c, seconds)),
        ("grpc", lambda c: _grpc(str(srv.grpc_target), req, c, seconds)),
    ]
    rows: dict[tuple[str, int], list[dict]] = {}
    for rnd in range(rounds):
        for c in levels:
            for name, fn in ways if rnd % 2 == 0 else ways[::-1]:
                r = asyncio.run(fn(c))
                row = {"bench": "serving", "section": "protocols", "protocol": name, "concurrency": c, "round": rnd}
                row.update(r, load_avg_1m=round(os.getloadavg()[0], 1), json_bytes=len(json_body))
                row["binary_bytes"] = len(bin_body)
                emit(row)
                rows.setdefault((name, c), []).append(row)
    out = []
    for c in levels:
        med = {n: float(np.median([r["throughput_rps"] for r in rows[(n, c)]])) for n, _ in ways}
        p50 = {n: float(np.median([r["p50_ms"] or np.nan for r in rows[(n, c)]])) for n, _ in ways}
        load = float(np.median([r["load_avg_1m"] for n, _ in ways for r in rows[(n, c)]]))
        summary = {
            "bench": "serving",
            "summary": "protocols_1x3x224x224",
            "concurrency": c,
            "throughput_rps": med,
            "p50_ms": p50,
            "binary_over_json": round(med["rest-binary"] / max(med["rest-json"], 1e-9), 2),
            "grpc_over_json": round(med["grpc"] / max(med["rest-json"], 1e-9), 2),
            "goal": "binary >= 3x JSON throughput",
            "met": med["rest-binary"] >= 3 * med["rest-json"],
            "load_avg_1m": load,
            "under_load": load > 3,
        }
        emit(summary)
        out.append(summary)
    return out


def failover(srv: Any, run_v2: str, emit: Callable[[dict], None], seconds: float, x: np.ndarray) -> list[dict]:
    """Under closed-loop load (plain HTTP users and ``Client`` users) for ``seconds`` each: SIGKILL a front end,
    SIGKILL a model replica, switch versions (deploy v2, then roll back). ``srv`` has 2 front ends and model
    ``cnn`` with 2 replicas."""
    from http_load import Load

    def kill_frontend() -> str:
        pid = srv.frontend_pids()[0]
        os.kill(pid, signal.SIGKILL)
        return f"front end pid {pid}"

    def kill_replica() -> str:
        pid = srv.replica_pids("cnn")[0]
        os.kill(pid, signal.SIGKILL)
        return f"model replica pid {pid}"

    def switch() -> str:
        v = srv.deploy("cnn", run_v2, replicas=1)
        back = srv.rollback("cnn")
        srv.unload("cnn", v)
        return f"deployed version {v}, rolled back to {back}, unloaded {v}"

    out = []
    for name, event in (("frontend_sigkill", kill_frontend), ("replica_sigkill", kill_replica), ("switch", switch)):
        load = Load(srv.url + "/v2/models/cnn/infer", x, threads=4, clients=4, max_seconds=seconds + 300)
        t0 = time.monotonic()
        load.wait_for(20)
        time.sleep(min(2.0, seconds / 10))
        what = event()
        left = seconds - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)
        load.finish()
        resets = [f for f in load.failures if not f[:3].isdigit()]
        row = {
            "bench": "serving",
            "summary": f"failover_{name}",
            "event": what,
            "load_seconds": round(time.monotonic() - t0, 1),
            "answered": len(load.ok),
            "client_failures": len(load.client_failures),
            "client_retries": load.client_retries,
            "plain_http_error_answers": len(load.http_errors),
            "plain_reset_connections": len(resets),
            "examples": (load.client_failures + load.http_errors)[:3],
            "goal": "0 Client failures, 0 error answers (404/5xx) to plain HTTP users",
            "met": not load.client_failures and not load.http_errors,
            "load_avg_1m": round(os.getloadavg()[0], 1),
        }
        emit(row)
        out.append(row)
        if name == "frontend_sigkill":  # wait for the replacement before the next scenario
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(srv.frontend_pids(timeout_s=5)) < 2:
                time.sleep(0.5)
        if name == "replica_sigkill":
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(srv.replica_pids("cnn", timeout_s=5)) < 2:
                time.sleep(0.5)
    return out
