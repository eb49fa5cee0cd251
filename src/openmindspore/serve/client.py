"""``Client``: a Python client for any Open Inference Protocol v2 REST server (ours, KServe, Triton).

::

    c = Client("http://127.0.0.1:8000")
    out = c.infer("digits", x)              # x: np.ndarray (n, 1, 8, 8) float32 -> {"logits": ..., "label": ...}

Numpy in, numpy out. A 429 answer is retried after its ``Retry-After`` (``max_429_retries`` times);
any other error raises ``InferenceError`` carrying the status and the server's ``error`` message.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import requests

from openmindspore.errors import OMSError
from openmindspore.serve.protocol import tensor_from_json, tensor_to_json

__all__ = ["Client", "InferenceError"]


class InferenceError(OMSError):
    """The server answered an error: ``status`` (HTTP) and ``message`` (its ``{"error": ...}``)."""

    def __init__(self, status: int, message: str, url: str) -> None:
        super().__init__(f"{url}: HTTP {status}: {message}")
        self.status, self.message, self.url = status, message, url


class Client:
    """Thin, keep-alive client; one instance per thread is the cheapest (``requests.Session``)."""

    def __init__(self, url: str, timeout: float = 60.0, max_429_retries: int = 3) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_429_retries = max_429_retries
        self.session = requests.Session()
        self._meta: dict[tuple[str, str | None], dict[str, Any]] = {}

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ requests
    def _request(self, method: Literal["GET", "POST"], path: str, body: Any = None) -> requests.Response:
        url = self.url + path
        for attempt in range(self.max_429_retries + 1):
            try:
                r = self.session.request(method, url, json=body, timeout=self.timeout)
            except requests.RequestException as e:
                raise InferenceError(0, f"cannot reach the server ({type(e).__name__}: {e})", url) from None
            if r.status_code == 429 and attempt < self.max_429_retries:
                time.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            return r
        return r  # pragma: no cover

    def _json(self, method: Literal["GET", "POST"], path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        r = self._request(method, path, body)
        if r.status_code not in ok:
            try:
                msg = r.json().get("error", r.text)
            except ValueError:
                msg = r.text
            raise InferenceError(r.status_code, msg, self.url + path)
        return r.json()

    @staticmethod
    def _model_path(model: str, version: str | None) -> str:
        return f"/v2/models/{model}" + (f"/versions/{version}" if version is not None else "")

    # ------------------------------------------------------------- health
    def live(self) -> bool:
        try:
            return self._request("GET", "/v2/health/live").status_code == 200
        except InferenceError:
            return False

    def ready(self) -> bool:
        try:
            return self._request("GET", "/v2/health/ready").status_code == 200
        except InferenceError:
            return False

    def model_ready(self, model: str, version: str | None = None) -> bool:
        return self._request("GET", self._model_path(model, version) + "/ready").status_code == 200

    def server_metadata(self) -> dict[str, Any]:
        return self._json("GET", "/v2")

    def model_metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        return self._json("GET", self._model_path(model, version))

    def metrics(self) -> str:
        r = self._request("GET", "/metrics")
        r.raise_for_status()
        return r.text

    # -------------------------------------------------------------- infer
    def infer_json(self, model: str, body: dict[str, Any], version: str | None = None) -> dict[str, Any]:
        """POST a raw OIP request body; returns the raw response body."""
        return self._json("POST", self._model_path(model, version) + "/infer", body)

    def infer(
        self,
        model: str,
        inputs: np.ndarray | dict[str, np.ndarray],
        version: str | None = None,
        outputs: list[str] | None = None,
        request_id: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Run ``inputs`` (``{name: (n, ...) array}``, or one array for a single-input model)."""
        if not isinstance(inputs, dict):
            key = (model, version)
            if key not in self._meta:
                self._meta[key] = self.model_metadata(model, version)
            specs = self._meta[key]["inputs"]
            if len(specs) != 1:
                raise ValueError(f"model {model!r} has inputs {[s['name'] for s in specs]}; pass a dict")
            inputs = {specs[0]["name"]: inputs}
        body: dict[str, Any] = {"inputs": [tensor_to_json(k, np.asarray(v)) for k, v in inputs.items()]}
        if outputs is not None:
            body["outputs"] = [{"name": o} for o in outputs]
        if request_id is not None:
            body["id"] = request_id
        resp = self.infer_json(model, body, version)
        return dict(tensor_from_json(t, "output") for t in resp["outputs"])
