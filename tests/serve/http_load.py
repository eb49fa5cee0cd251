"""Closed-loop HTTP load for the serving tests and ``benchmarks/serving.py``: plain HTTP users and ``Client`` users
side by side, every answer and failure recorded with its time (so a test can look at what happened after an
event such as a SIGKILL)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests


def x_body(x, name="x", datatype="FP32"):
    """An OIP JSON request body for one input tensor."""
    return {"inputs": [{"name": name, "shape": list(x.shape), "datatype": datatype, "data": x.reshape(-1).tolist()}]}


class Load:
    """Bounded closed-loop load on loopback from ``threads`` plain HTTP users (keep-alive ``requests``; every
    non-200 answer and every connection error recorded in ``failures``) and ``clients`` users of ``Client``
    (which retries; what still fails is recorded in ``client_failures``)."""

    def __init__(self, url: str, x: np.ndarray, threads: int = 8, clients: int = 0, max_seconds: float = 180.0):
        self.url, self.body = url, json.dumps(x_body(x))
        self.model = url.rstrip("/").split("/")[-2]
        self.x = x
        self.stop = threading.Event()
        self.ok: list[tuple[float, str]] = []
        self.failures: list[str] = []
        self.client_failures: list[str] = []
        self.client_retries = 0
        self.deadline = time.monotonic() + max_seconds
        self.pool = ThreadPoolExecutor(threads + clients)
        self.futures = [self.pool.submit(self._loop) for _ in range(threads)]
        self.futures += [self.pool.submit(self._client_loop) for _ in range(clients)]

    def _loop(self) -> None:
        s = requests.Session()
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                r = s.post(self.url, data=self.body, timeout=60)
            except requests.RequestException as e:
                self.failures.append(f"{type(e).__name__}: {e}")
                continue
            if r.status_code == 200:
                self.ok.append((time.monotonic(), r.json()["model_version"]))
            else:
                self.failures.append(f"{r.status_code}: {r.text[:300]}")

    def _client_loop(self) -> None:
        from openmindspore.serve import Client

        base = self.url.split("/v2/")[0]
        with Client(base, retry_s=60) as c:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                try:
                    resp, _ = c.infer_raw(self.model, {"x": self.x}, binary=True)
                except Exception as e:  # noqa: BLE001 - recorded: the test asserts there are none
                    self.client_failures.append(f"{type(e).__name__}: {e}")
                    continue
                self.ok.append((time.monotonic(), resp["model_version"]))
            self.client_retries += c.retries

    @property
    def http_errors(self) -> list[str]:
        """Failures that were answers (a status such as 404 or 503), not reset connections."""
        return [f for f in self.failures if f[:3].isdigit()]

    def wait_for(self, n: int, timeout: float = 60.0, version: str | None = None, since: float = 0.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if sum(1 for t, v in list(self.ok) if t >= since and (version is None or v == version)) >= n:
                return
            time.sleep(0.05)
        raise AssertionError(
            f"load did not reach {n} answers (version={version}) in {timeout} s; failures={self.failures[:3]}"
        )

    def finish(self) -> None:
        self.stop.set()
        for f in self.futures:
            f.result()
        self.pool.shutdown()
