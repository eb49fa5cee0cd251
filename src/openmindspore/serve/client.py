"""``Client``: a Python client for any Open Inference Protocol v2 REST server (ours, KServe, Triton).

::

    c = Client("http://127.0.0.1:8000")
    out = c.infer("digits", x)              # x: np.ndarray (n, 1, 8, 8) float32 -> {"logits": ..., "label": ...}
    c = Client("https://host:8443", token="s3cret", verify="ca.pem", binary=True)

Numpy in, numpy out. ``binary=True`` sends and receives tensors as raw bytes (the binary tensor extension;
``BYTES`` inputs always go binary). Inference is idempotent, so a request that could not be answered —
a reset or refused connection (e.g. a front end that died or is restarting), 503 (draining, replicas being
replaced) or 429 (queue full) — is sent again with exponential backoff (honouring ``Retry-After``) until
``retry_s`` seconds have passed. Any other error raises ``InferenceError`` carrying the status and the
server's ``error`` message.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import requests

from openmindspore.errors import OMSError
from openmindspore.serve.binary import decode_response, encode_request

__all__ = ["Client", "InferenceError"]

_RETRY_STATUS = (429, 503)


class InferenceError(OMSError):
    """The server answered an error: ``status`` (HTTP; 0: unreachable) and ``message`` (its ``{"error": ...}``)."""

    def __init__(self, status: int, message: str, url: str) -> None:
        super().__init__(f"{url}: HTTP {status}: {message}")
        self.status, self.message, self.url = status, message, url


class Client:
    """Thin, keep-alive client; one instance per thread is the cheapest (``requests.Session``).

    ``retry_s``: how long an unanswered request is retried (0: never); ``token``: bearer token;
    ``verify``: TLS verification (``True``, ``False`` or a CA bundle path, e.g. a self-signed certificate).
    """

    def __init__(
        self,
        url: str,
        timeout: float = 60.0,
        retry_s: float = 30.0,
        token: str | None = None,
        verify: bool | str = True,
        binary: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout, self.retry_s, self.binary = timeout, retry_s, binary
        self.session = requests.Session()
        self.verify = verify  # per request: a session-level value loses to REQUESTS_CA_BUNDLE
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.retries = 0  # requests sent again (for tests and benchmarks)
        self._meta: dict[tuple[str, str | None], dict[str, Any]] = {}

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ requests
    def _request(
        self,
        method: Literal["GET", "POST"],
        path: str,
        body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        url = self.url + path
        deadline = time.monotonic() + self.retry_s
        delay = 0.02
        while True:
            wait: float | None = None
            try:
                r = self.session.request(
                    method, url, json=body, data=data, headers=headers, timeout=self.timeout, verify=self.verify
                )
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
                if time.monotonic() + delay > deadline:
                    raise InferenceError(0, f"cannot reach the server ({type(e).__name__}: {e})", url) from None
                r = None
            if r is not None:
                if r.status_code not in _RETRY_STATUS:
                    return r
                after = r.headers.get("Retry-After", "")
                wait = float(after) if after.replace(".", "", 1).isdigit() else None
                if time.monotonic() + (wait if wait is not None else delay) > deadline:
                    return r
            self.retries += 1
            time.sleep(wait if wait is not None else delay)
            delay = min(delay * 2, 1.0)

    @staticmethod
    def _raise(r: requests.Response, url: str) -> None:
        try:
            msg = r.json().get("error", r.text)
        except ValueError:
            msg = r.text
        raise InferenceError(r.status_code, msg, url)

    def _json(self, method: Literal["GET", "POST"], path: str, body: Any = None) -> Any:
        r = self._request(method, path, body)
        if r.status_code != 200:
            self._raise(r, self.url + path)
        return r.json()

    @staticmethod
    def _model_path(model: str, version: str | None) -> str:
        return f"/v2/models/{model}" + (f"/versions/{version}" if version is not None else "")

    # ------------------------------------------------------------- health
    def _ok(self, path: str) -> bool:
        try:
            r = self.session.get(self.url + path, timeout=self.timeout, verify=self.verify)
        except requests.RequestException:
            return False
        return r.status_code == 200

    def live(self) -> bool:
        return self._ok("/v2/health/live")

    def ready(self) -> bool:
        return self._ok("/v2/health/ready")

    def model_ready(self, model: str, version: str | None = None) -> bool:
        return self._request("GET", self._model_path(model, version) + "/ready").status_code == 200

    def server_metadata(self) -> dict[str, Any]:
        return self._json("GET", "/v2")

    def model_metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        return self._json("GET", self._model_path(model, version))

    def metrics(self) -> str:
        r = self._request("GET", "/metrics")
        if r.status_code != 200:
            self._raise(r, self.url + "/metrics")
        return r.text

    # -------------------------------------------------------------- infer
    def infer_json(self, model: str, body: dict[str, Any], version: str | None = None) -> dict[str, Any]:
        """POST a raw OIP request body; returns the raw response body."""
        return self._json("POST", self._model_path(model, version) + "/infer", body)

    def infer_raw(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        version: str | None = None,
        outputs: list[str] | None = None,
        request_id: str | None = None,
        binary: bool | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(response JSON, {name: array})``; tensors travel binary when ``binary`` (default: the client's)."""
        arrays = {k: np.asarray(v) for k, v in inputs.items()}
        use_binary = self.binary if binary is None else binary
        use_binary = use_binary or any(a.dtype == object or a.dtype.kind == "S" for a in arrays.values())
        data, headers = encode_request(arrays, outputs, request_id, use_binary, parameters)
        path = self._model_path(model, version) + "/infer"
        r = self._request("POST", path, data=data, headers=headers)
        if r.status_code != 200:
            self._raise(r, self.url + path)
        return decode_response(r.content, r.headers.get("Inference-Header-Content-Length"))

    def infer(
        self,
        model: str,
        inputs: np.ndarray | dict[str, np.ndarray],
        version: str | None = None,
        outputs: list[str] | None = None,
        request_id: str | None = None,
        binary: bool | None = None,
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
        return self.infer_raw(model, inputs, version, outputs, request_id, binary)[1]
