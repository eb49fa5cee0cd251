"""The front-end endpoints in-process (no Ray): REST JSON and binary, gRPC, BYTES, auth, size limit, timeout,
TLS — and every bad input answered with its documented status and a message naming the field, after which
the server keeps serving. Models run in this process (``local_oip.LocalServer``); the rest is production code.
"""

from __future__ import annotations

import gzip
import json
import socket
import subprocess

import grpc
import numpy as np
import pytest
import requests
from local_oip import LocalServer

from openmindspore.serve.binary import encode_request
from openmindspore.serve.client import Client, InferenceError
from openmindspore.serve.grpc_client import GrpcClient
from openmindspore.serve.registry import load_predictor

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tok = tmp_path_factory.mktemp("auth") / "token"
    tok.write_text(TOKEN + "\n")
    models = {
        "id": load_predictor("builtin:identity?shape=2x3"),
        "img": load_predictor("builtin:identity?shape=3x224x224"),
        "bytes": load_predictor("builtin:identity?datatype=BYTES&dim=1"),
        "slow": load_predictor("builtin:identity?dim=2&delay_ms=400"),
    }
    with LocalServer(models, auth_token_file=str(tok), max_request_mb=1, request_timeout_s=5) as srv:
        yield srv


def client(srv, **kw) -> Client:
    return Client(srv.url, token=TOKEN, retry_s=0, **kw)


def ok(srv) -> None:
    """The server still answers a good request."""
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    np.testing.assert_array_equal(client(srv).infer("id", x)["y"], x)


# --------------------------------------------------------------------------- REST JSON and binary
@pytest.mark.parametrize("binary", [False, True])
def test_rest_json_and_binary_round_trip(server, binary):
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    with client(server, binary=binary) as c:
        resp, out = c.infer_raw("id", {"x": x}, request_id="r1")
        assert resp["id"] == "r1" and resp["model_name"] == "id" and resp["model_version"] == "1"
        np.testing.assert_array_equal(out["y"], x)
        assert out["y"].dtype == np.float32
        assert ("parameters" in resp["outputs"][0]) == binary  # binary outputs carry binary_data_size


def test_binary_response_only_for_outputs_that_ask(server):
    x = np.ones((1, 2, 3), np.float32)
    body, headers = encode_request({"x": x}, binary=True)
    head = json.loads(body[: int(headers["Inference-Header-Content-Length"])])
    head["parameters"] = {}  # no binary_data_output: JSON answer even for a binary request
    head["outputs"] = [{"name": "y", "parameters": {"binary_data": False}}]
    hj = json.dumps(head).encode()
    r = requests.post(
        server.url + "/v2/models/id/infer",
        data=hj + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(hj)), "Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
    assert r.json()["outputs"][0]["data"] == [1.0] * 6


def test_bytes_tensors_json_and_binary(server):
    words = np.array([[b"hello"], [b"\x00\xffraw"]], dtype=object)
    with client(server) as c:
        out = c.infer("bytes", words)  # BYTES inputs travel binary: any byte value survives
        assert out["y"].dtype == object and out["y"].tolist() == words.tolist()
        resp = c.infer_json(
            "bytes", {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "BYTES", "data": ["text"]}]}
        )
        assert resp["outputs"][0]["data"] == ["text"] and resp["outputs"][0]["datatype"] == "BYTES"


def test_gzip_request_body(server):
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32", "data": [1] * 6}]})
    r = requests.post(
        server.url + "/v2/models/id/infer",
        data=gzip.compress(body.encode()),
        headers={"Content-Encoding": "gzip", "Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [1.0] * 6


# --------------------------------------------------------------------------- gRPC
def test_grpc_metadata_ready_and_infer(server):
    x = np.random.default_rng(1).standard_normal((3, 2, 3)).astype(np.float32)
    with GrpcClient(server.grpc_target, token=TOKEN, retry_s=0) as g:
        assert g.live() and g.ready() and g.model_ready("id")
        meta = g.model_metadata("id")
        assert meta.name == "id" and list(meta.inputs[0].shape) == [-1, 2, 3] and meta.inputs[0].datatype == "FP32"
        np.testing.assert_array_equal(g.infer("id", {"x": x})["y"], x)
        words = np.array([[b"a\x00b"]], dtype=object)
        assert g.infer("bytes", {"x": words})["y"].tolist() == words.tolist()


def test_grpc_typed_contents(server):
    from openmindspore.serve._proto import grpc_predict_v2_pb2 as pb

    with GrpcClient(server.grpc_target, token=TOKEN, retry_s=0) as g:
        req = pb.ModelInferRequest(model_name="id")
        t = req.inputs.add(name="x", datatype="FP32", shape=[1, 2, 3])
        t.contents.fp32_contents.extend([1, 2, 3, 4, 5, 6])
        resp = g.stub.ModelInfer(req, metadata=g.metadata, timeout=30)
        assert np.frombuffer(resp.raw_output_contents[0], "<f4").tolist() == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    "datatype, shape, raw, words",
    [
        ("FP64", [1, 2, 3], np.zeros(6, np.float64).tobytes(), ["input 'x'", "expected datatype FP32", "FP64"]),
        ("FP32", [1, 6], np.zeros(6, np.float32).tobytes(), ["input 'x'", "expected shape [-1, 2, 3]", "[1, 6]"]),
        ("FP32", [1, 2, 3], b"\x00" * 10, ["input 'x'", "needs 24 bytes", "received 10"]),
    ],
)
def test_grpc_bad_input_is_invalid_argument_naming_the_field(server, datatype, shape, raw, words):
    from openmindspore.serve._proto import grpc_predict_v2_pb2 as pb

    with GrpcClient(server.grpc_target, token=TOKEN, retry_s=0) as g:
        req = pb.ModelInferRequest(model_name="id")
        req.inputs.add(name="x", datatype=datatype, shape=shape)
        req.raw_input_contents.append(raw)
        with pytest.raises(grpc.RpcError) as e:
            g.stub.ModelInfer(req, metadata=g.metadata, timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        for w in words:
            assert w in e.value.details(), (w, e.value.details())
        with pytest.raises(grpc.RpcError) as e:
            g.infer("nope", {"x": np.zeros((1, 2, 3), np.float32)})
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and "unknown model 'nope'" in e.value.details()
    ok(server)


def test_grpc_auth(server):
    with GrpcClient(server.grpc_target, retry_s=0) as g:
        assert g.live() and g.ready()  # health stays open
        with pytest.raises(grpc.RpcError) as e:
            g.model_metadata("id")
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "authorization: Bearer" in e.value.details()
    with GrpcClient(server.grpc_target, token="wrong", retry_s=0) as g:
        with pytest.raises(grpc.RpcError) as e:
            g.infer("id", {"x": np.zeros((1, 2, 3), np.float32)})
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "wrong bearer token" in e.value.details()


# --------------------------------------------------------------------------- bad input over REST
def test_wrong_or_missing_token_is_401_and_health_stays_open(server):
    for headers, words in (({}, "missing bearer token"), ({"Authorization": "Bearer nope"}, "wrong bearer token")):
        r = requests.post(server.url + "/v2/models/id/infer", data=b"{}", headers=headers, timeout=30)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        assert words in r.json()["error"] and "Authorization" in r.json()["error"]
        assert requests.get(server.url + "/v2/models", headers=headers, timeout=30).status_code == 401
        assert requests.get(server.url + "/metrics", headers=headers, timeout=30).status_code == 401
    assert requests.get(server.url + "/v2/health/live", timeout=30).status_code == 200
    assert requests.get(server.url + "/v2/health/ready", timeout=30).status_code == 200
    ok(server)


def test_oversize_body_is_413_before_the_body_is_read(server):
    big = np.zeros((1, 64 << 20), np.uint8).tobytes()  # 64 MB against --max-request-mb 1
    r = requests.post(
        server.url + "/v2/models/img/infer", data=big, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    )
    assert r.status_code == 413 and "--max-request-mb=1" in r.json()["error"] and "Content-Length" in r.json()["error"]
    # the answer comes before the body: a client that declares 64 MB and sends 1 kB reads its 413 at once
    with socket.create_connection(("127.0.0.1", server.config.port), timeout=10) as s:
        s.sendall(
            b"POST /v2/models/img/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Length: 67108864\r\n\r\n"
            + b"\x00" * 1024
        )
        head = s.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head[:200]

    def chunks():  # no Content-Length: refused once the streamed bytes pass the limit
        for _ in range(64):
            yield b"\x00" * (1 << 20)

    r = requests.post(
        server.url + "/v2/models/img/infer", data=chunks(), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    )
    assert r.status_code == 413 and "streamed" in r.json()["error"]
    ok(server)


def test_truncated_binary_payload_is_400_naming_the_input(server):
    x = np.ones((1, 2, 3), np.float32)
    body, headers = encode_request({"x": x}, binary=True)
    headers["Authorization"] = f"Bearer {TOKEN}"
    r = requests.post(server.url + "/v2/models/id/infer", data=body[:-5], headers=headers, timeout=30)
    assert r.status_code == 400
    err = r.json()["error"]
    assert "input 'x'" in err and "binary_data_size=24" in err and "truncated" in err, err
    headers["Inference-Header-Content-Length"] = str(len(body) + 1)
    r = requests.post(server.url + "/v2/models/id/infer", data=body, headers=headers, timeout=30)
    assert r.status_code == 400 and "Inference-Header-Content-Length" in r.json()["error"]
    ok(server)


def test_request_timeout_is_504(server):
    x = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    with client(server) as c:
        with pytest.raises(InferenceError) as e:  # Triton's parameters.timeout, microseconds
            c.infer_json("slow", {**x, "parameters": {"timeout": 50_000}})
        assert e.value.status == 504 and "request timeout of 0.05 s" in e.value.message
        assert c.infer("slow", np.ones((1, 2), np.float32))["y"].tolist() == [[1.0, 1.0]]  # within 5 s
    ok(server)


def test_metrics_count_both_protocols(server):
    text = requests.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).text
    assert 'protocol="grpc"' in text and 'protocol="rest"' in text and 'kind="auth"' in text


# --------------------------------------------------------------------------- TLS
def test_tls_rest_and_grpc(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
        + ["-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    models = {"id": load_predictor("builtin:identity?dim=3")}
    with LocalServer(models, tls_cert=str(cert), tls_key=str(key)) as srv:
        assert srv.url.startswith("https://")
        x = np.arange(3, dtype=np.float32)[None]
        with Client(srv.url, verify=str(cert), retry_s=0) as c:
            np.testing.assert_array_equal(c.infer("id", x)["y"], x)
        with pytest.raises(InferenceError):  # the certificate is not trusted by default
            Client(srv.url, retry_s=0).model_metadata("id")
        with GrpcClient(srv.grpc_target, root_certificates=cert.read_bytes(), retry_s=0) as g:
            np.testing.assert_array_equal(g.infer("id", {"x": x})["y"], x)
