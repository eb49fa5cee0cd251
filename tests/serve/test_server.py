"""The real server on 127.0.0.1: every endpoint and error, batching, overload, gRPC, and under load — a model
replica SIGKILL, a version switch/rollback and a front-end SIGKILL — with zero failed requests for ``Client``
users (they retry) and never a 404 or 5xx for plain HTTP users (only connections a killed front end held may
reset); metrics, client, CLI, an exported MindIR model.

One Ray Serve deployment for the whole module (about a minute on 2 cores), with two front ends sharing
the ports, so every test also goes through per-front-end batchers and merged ``/metrics``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from http_load import Load, x_body

from oms_testing import free_port, run_oms

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from openmindspore.train import config_from_dict, train

    base = tmp_path_factory.mktemp("serve_runs")
    cfg = {"dataset": "digits", "model": {"name": "mlp", "hidden": [16]}, "steps": 5, "batch_size": 32}
    train(config_from_dict(cfg), out_dir=base / "v1")
    train(config_from_dict({**cfg, "steps": 3, "seed": 7}), out_dir=base / "v2")
    p = run_oms("export", str(base / "v1"), "--out", str(base / "digits.mindir"), timeout=600)
    assert p.returncode == 0, p.stderr
    return base / "v1", base / "v2", base / "digits.mindir"


@pytest.fixture(scope="module")
def server(runs, yolos_run):
    from openmindspore.serve import Server

    # two front-end processes share the REST and gRPC ports
    srv = Server(port=free_port(), num_cpus=4, frontends=2, grpc_port=free_port())
    try:
        srv.start()
        srv.deploy("digits", str(runs[0]), replicas=2, batching={"max_batch": 32, "max_delay_ms": 10, "max_queue": 512})
        srv.deploy(
            "slow", "builtin:identity?dim=2&delay_ms=300", batching={"max_batch": 1, "max_delay_ms": 0, "max_queue": 2}
        )
        # 40 ms per batch keeps both replicas busy under load, so a SIGKILL always hits a batch in flight
        srv.deploy(
            "busy", "builtin:identity?dim=4&delay_ms=40", replicas=2, batching={"max_batch": 4, "max_delay_ms": 0}
        )
        srv.deploy("det", f"{yolos_run}?threshold=0.2", batching={"max_batch": 4, "max_delay_ms": 20})
        srv.deploy("exported", str(runs[2]))
        yield srv
    finally:
        srv.shutdown()


@pytest.fixture(scope="module")
def local(runs):
    """The same checkpoint run in this process: the reference for every served answer."""
    from openmindspore.serve.registry import load_predictor

    return load_predictor(str(runs[0]))


@pytest.fixture(scope="module")
def samples():
    from openmindspore.data import load_dataset

    return load_dataset("digits").x_test[:64].astype(np.float32)


def post(srv, path, body, raw=False):
    data = body if raw else json.dumps(body)
    return requests.post(srv.url + path, data=data, headers={"Content-Type": "application/json"}, timeout=60)


def metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --------------------------------------------------------------------------- endpoints
def test_server_health_and_model_metadata(server):
    base = server.url
    assert requests.get(base + "/v2", timeout=10).json()["name"] == "openmindspore"
    assert requests.get(base + "/v2/health/live", timeout=10).json() == {"live": True}
    assert requests.get(base + "/v2/health/ready", timeout=10).json() == {"ready": True}
    meta = requests.get(base + "/v2/models/digits", timeout=10).json()
    assert meta["name"] == "digits" and meta["versions"] == ["1"] and meta["platform"] == "mindspore"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert meta["outputs"] == [
        {"name": "logits", "datatype": "FP32", "shape": [-1, 10]},
        {"name": "label", "datatype": "INT64", "shape": [-1]},
    ]
    assert requests.get(base + "/v2/models/digits/versions/1", timeout=10).json()["inputs"] == meta["inputs"]
    for path in ("/v2/models/digits/ready", "/v2/models/digits/versions/1/ready"):
        r = requests.get(base + path, timeout=10)
        assert r.status_code == 200 and r.json()["ready"] is True
    names = {(m["name"], m["version"]) for m in requests.get(base + "/v2/models", timeout=10).json()}
    assert {("digits", "1"), ("slow", "1")} <= names


def test_infer_matches_the_checkpoint_run_locally(server, local, samples):
    from openmindspore.serve import Client

    x = samples[:5]
    want = local.predict({"x": x})
    with Client(server.url) as c:
        got = c.infer("digits", x)
        np.testing.assert_allclose(got["logits"], want["logits"], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got["label"], want["label"])
        assert got["label"].dtype == np.int64 and got["logits"].shape == (5, 10)
        only = c.infer("digits", {"x": x[:1]}, version="1", outputs=["label"])
        assert list(only) == ["label"] and only["label"].tolist() == want["label"][:1].tolist()
    r = post(server, "/v2/models/digits/versions/1/infer", {**x_body(x[:2]), "id": "req-7"}).json()
    assert r["id"] == "req-7" and r["model_name"] == "digits" and r["model_version"] == "1"
    nested = {"inputs": [{"name": "x", "shape": [2, 1, 8, 8], "datatype": "FP32", "data": x[:2].tolist()}]}
    assert post(server, "/v2/models/digits/infer", nested).json()["outputs"] == r["outputs"]


@pytest.mark.parametrize(
    "path, body, status, words",
    [
        (
            "/v2/models/digits/infer",
            {"inputs": [{"name": "image", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.0] * 64}]},
            400,
            ["unknown input 'image'", "['x']"],
        ),
        (
            "/v2/models/digits/infer",
            {"inputs": [{"name": "x", "shape": [1, 1, 8, 8], "datatype": "FP64", "data": [0.0] * 64}]},
            400,
            ["'x'", "expected datatype FP32", "received FP64"],
        ),
        (
            "/v2/models/digits/infer",
            {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]},
            400,
            ["'x'", "expected shape [-1, 1, 8, 8]", "received [1, 64]"],
        ),
        (
            "/v2/models/digits/infer",
            {"inputs": [{"name": "x", "shape": [2, 1, 8, 8], "datatype": "FP32", "data": [0.0] * 64}]},
            400,
            ["'x'", "needs 128 elements", "received 64"],
        ),
        ("/v2/models/digits/infer", b'{"inputs": [{"name": "x",', 400, ["not valid JSON"]),
        ("/v2/models/nope/infer", {"inputs": []}, 404, ["unknown model 'nope'", "digits"]),
        ("/v2/models/digits/versions/9/infer", {"inputs": []}, 404, ["no version '9'", "['1']"]),
    ],
)
def test_errors_answer_status_and_error_body(server, path, body, status, words):
    r = post(server, path, body, raw=isinstance(body, bytes))
    assert r.status_code == status, r.text
    err = r.json()
    assert list(err) == ["error"]
    for w in words:
        assert w in err["error"], (w, err)


def test_unknown_routes_and_methods(server):
    assert requests.get(server.url + "/v2/models/nope", timeout=10).status_code == 404
    assert requests.get(server.url + "/v2/nothing", timeout=10).json()["error"].startswith("no route")
    r = requests.get(server.url + "/v2/models/digits/infer", timeout=10)
    assert r.status_code == 405 and "POST" in r.json()["error"]


# --------------------------------------------------------------------------- batching
def test_dynamic_batching_over_http_mixes_request_sizes(server, local, samples):
    before = requests.get(server.url + "/metrics", timeout=10).text
    sizes = [1, 3, 2, 4, 1, 2, 5, 1] * 4
    starts = np.cumsum([0] + sizes[:-1])
    xs = [samples[s : s + n] for s, n in zip(starts % 48, sizes)]

    def one(x):
        return post(server, "/v2/models/digits/infer", x_body(x))

    with ThreadPoolExecutor(len(xs)) as pool:
        answers = list(pool.map(one, xs))
    for x, r in zip(xs, answers):
        assert r.status_code == 200, r.text
        logits = np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(len(x), 10)
        np.testing.assert_allclose(logits, local.predict({"x": x})["logits"], rtol=1e-5, atol=1e-5)
    after = requests.get(server.url + "/metrics", timeout=10).text
    lab = {"model": "digits", "version": "1"}
    batches = metric(after, "oms_serve_batch_size_count", **lab) - metric(before, "oms_serve_batch_size_count", **lab)
    samples_sum = metric(after, "oms_serve_batch_size_sum", **lab) - metric(before, "oms_serve_batch_size_sum", **lab)
    assert samples_sum == sum(sizes)  # batch size counts samples
    assert batches < len(xs), f"{len(xs)} concurrent requests went out as {batches} batches: nothing was batched"


def test_overload_answers_429_with_retry_after(server):
    body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]}
    # one replica, one sample per batch taking 300 ms, at most 2 samples queued: 8 at once cannot all fit
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(server, "/v2/models/slow/infer", body), range(8)))
    codes = sorted(r.status_code for r in answers)
    assert set(codes) <= {200, 429} and codes.count(429) >= 1 and codes.count(200) >= 1, codes
    for r in answers:
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1 and "queue full" in r.json()["error"]
    text = requests.get(server.url + "/metrics", timeout=10).text
    assert metric(text, "oms_serve_requests_total", model="slow", code="429") == codes.count(429)
    assert metric(text, "oms_serve_request_errors_total", model="slow", kind="overload") == codes.count(429)


def test_front_end_calls_local_replicas_over_their_channel(server):
    """Replicas on the front end's node get batches over their Unix-socket channel, not a Ray call (``channel.py``);
    the SIGKILL tests below therefore kill replicas on this path."""
    from ray import serve

    one = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    for _ in range(8):  # new connections: the kernel spreads them over both front ends
        assert post(server, "/v2/models/busy/infer", {"inputs": [one]}).status_code == 200
    handle = serve.get_deployment_handle("FrontEnd", app_name=server.frontend_app)
    pools = {
        (d["pid"], d["models"]["busy"]["replicas"]["1"], d["models"]["busy"]["channels"]["1"])
        for d in [handle.describe.remote().result() for _ in range(8)]
    }
    assert all(known == channels for _, known, channels in pools), pools  # every known replica: by channel
    assert max(channels for _, _, channels in pools) >= 1, pools


# --------------------------------------------------------------------------- fault tolerance
def test_replica_sigkill_under_load_fails_zero_requests(server):
    def retries() -> float:
        return metric(requests.get(server.url + "/metrics", timeout=10).text, "oms_serve_retries_total", model="busy")

    load = Load(server.url + "/v2/models/busy/infer", np.ones((1, 4), np.float32), threads=8, clients=4)
    victims, new = [], []
    try:
        load.wait_for(40)
        for _ in range(2):  # a second kill only if the first victim happened to have no batch in flight
            pids = server.replica_pids("busy")
            assert len(pids) == 2
            victims.append(pids[0])
            os.kill(pids[0], signal.SIGKILL)
            load.wait_for(50, since=time.monotonic())  # keeps serving on the survivor
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:  # Ray Serve replaces the dead replica
                new = server.replica_pids("busy", timeout_s=5)
                if len(new) == 2 and not set(victims) & set(new):
                    break
                time.sleep(0.5)
            load.wait_for(20, since=time.monotonic())
            if retries() >= 1:
                break
    finally:
        load.finish()
    assert load.failures == [], f"{len(load.failures)} failed requests, e.g. {load.failures[:3]}"
    assert load.client_failures == [], load.client_failures[:3]
    assert len(new) == 2 and not set(victims) & set(new), (victims, new)
    print(f"served {len(load.ok)} requests, 0 failed; batches retried on another replica: {retries():.0f}")
    assert retries() >= 1, "a killed replica had a batch in flight, which must have been retried elsewhere"


def test_version_switch_and_rollback_under_load_fail_zero_requests(server, runs, samples):
    load = Load(server.url + "/v2/models/digits/infer", samples[:3], threads=4, clients=2)
    try:
        load.wait_for(20, version="1")
        assert server.deploy("digits", str(runs[1]), replicas=1) == "2"  # load beside v1, then switch
        t_switch = time.monotonic()
        load.wait_for(30, version="2", since=t_switch)
        assert server.versions("digits") == {"default": "2", "versions": ["1", "2"]}
        assert server.rollback("digits") == "1"
        t_back = time.monotonic()
        load.wait_for(30, version="1", since=t_back)
        server.unload("digits", "2")  # drains, then deletes
        load.wait_for(20, since=time.monotonic())
    finally:
        load.finish()
    assert load.failures == [], f"{len(load.failures)} failed requests, e.g. {load.failures[:3]}"
    assert load.client_failures == [], load.client_failures[:3]
    late = [v for t, v in load.ok if t > t_back + 2.0]
    assert late and set(late) == {"1"}
    assert server.versions("digits") == {"default": "1", "versions": ["1"]}
    assert requests.get(server.url + "/v2/models/digits/versions/2", timeout=10).status_code == 404
    logits2 = post(server, "/v2/models/digits/infer", x_body(samples[:1])).json()
    assert logits2["model_version"] == "1"


# --------------------------------------------------------------------------- YOLOS
def test_yolos_detector_over_http(server, yolos_run, yolos_images, tiny_yolos):
    from openmindspore.serve import Client
    from openmindspore.serve.registry import load_predictor

    k, (h, w) = tiny_yolos["k"], tiny_yolos["image_size"]
    meta = requests.get(server.url + "/v2/models/det", timeout=10).json()
    assert meta["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, h, w, 3]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
        ("boxes", "FP32", [-1, k, 4]),
        ("scores", "FP32", [-1, k]),
        ("labels", "INT64", [-1, k]),
        ("count", "INT64", [-1]),
    ]
    assert meta["parameters"]["kind"] == "detector" and meta["parameters"]["threshold"] == 0.2
    want = load_predictor(f"{yolos_run}?threshold=0.2").predict({"image": yolos_images})
    with ThreadPoolExecutor(2) as pool:  # two clients, one image each: answered as if alone
        got = list(pool.map(lambda i: Client(server.url).infer("det", yolos_images[i : i + 1]), range(2)))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g["count"], want["count"][i : i + 1])
        np.testing.assert_array_equal(g["labels"], want["labels"][i : i + 1])
        np.testing.assert_allclose(g["scores"], want["scores"][i : i + 1], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g["boxes"], want["boxes"][i : i + 1], rtol=1e-4, atol=1e-3)
    bad = post(server, "/v2/models/det/infer", x_body(yolos_images.astype(np.float32), name="image"))
    assert bad.status_code == 400 and "expected datatype UINT8, received FP32" in bad.json()["error"]


def test_oms_predict_sends_an_image_file_and_scales_boxes_back(server, yolos_run, yolos_images, tiny_yolos, tmp_path):
    from PIL import Image

    from openmindspore.serve.registry import load_predictor

    h, w = tiny_yolos["image_size"]
    Image.fromarray(yolos_images[0]).resize((2 * w, 2 * h), Image.NEAREST).save(tmp_path / "big.png")
    p = run_oms(
        "predict",
        server.url,
        "--model",
        "det",
        "--input",
        str(tmp_path / "big.png"),
        "--output",
        str(tmp_path / "det.npz"),
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    sent = np.asarray(Image.open(tmp_path / "big.png").convert("RGB").resize((w, h), Image.BILINEAR), np.uint8)[None]
    want = load_predictor(f"{yolos_run}?threshold=0.2").predict({"image": sent})
    with np.load(tmp_path / "det.npz") as z:
        np.testing.assert_array_equal(z["count"], want["count"])
        np.testing.assert_allclose(z["boxes"], want["boxes"] * 2, rtol=1e-4, atol=2e-3)  # in the big image's pixels


# --------------------------------------------------------------------------- gRPC, binary, exported, tritonclient
def test_grpc_and_binary_rest_and_the_exported_mindir_answer_like_the_checkpoint(server, local, samples):
    from openmindspore.serve import Client, GrpcClient

    x = samples[:6]
    want = local.predict({"x": x})
    with GrpcClient(server.grpc_target, retry_s=0) as g:
        assert g.live() and g.ready() and g.model_ready("digits")
        got = g.infer("digits", {"x": x})
        np.testing.assert_allclose(got["logits"], want["logits"], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got["label"], want["label"])
    with Client(server.url, binary=True) as c:
        resp, got = c.infer_raw("digits", {"x": x})
        assert "binary_data_size" in resp["outputs"][0]["parameters"]
        np.testing.assert_allclose(got["logits"], want["logits"], rtol=1e-5, atol=1e-5)
        exported = c.infer("exported", x)  # oms export --format mindir of the same run, served from the file
        np.testing.assert_allclose(exported["logits"], want["logits"], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(exported["label"], want["label"])
        assert c.model_metadata("exported")["platform"] == "mindspore"


def test_nvidia_tritonclient_http_binary_and_grpc(server, local, samples, tritonclient_python):
    """NVIDIA's tritonclient (own venv: its grpc extra needs protobuf < 7): live, ready, metadata, infer."""
    import subprocess

    x = samples[:3]
    want = local.predict({"x": x})
    args = {"http": f"127.0.0.1:{server.port}", "grpc": server.grpc_target, "model": "digits", "x": x.tolist()}
    script = str(Path(__file__).with_name("triton_check.py"))
    p = subprocess.run([tritonclient_python, script, json.dumps(args)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    for proto in ("http", "grpc", "http_mixed"):
        r = out[proto]
        if proto != "http_mixed":
            assert r["live"] and r["ready"] and r["model_ready"] and r["name"] == "digits", (proto, r)
            assert r["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 8, 8]}], (proto, r)
        np.testing.assert_allclose(np.asarray(r["logits"]), want["logits"], rtol=1e-5, atol=1e-5)
        assert r["label"] == want["label"].tolist(), proto


# --------------------------------------------------------------------------- observability, CLI
def test_prometheus_metrics_exposition(server):
    r = requests.get(server.url + "/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for name in (
        "oms_serve_requests_total",
        "oms_serve_request_errors_total",
        "oms_serve_request_latency_seconds_bucket",
        "oms_serve_batch_size_bucket",
        "oms_serve_queue_depth",
        "oms_serve_retries_total",
    ):
        assert name in r.text, name
    assert metric(r.text, "oms_serve_requests_total", model="digits", code="200") > 0
    assert metric(r.text, "oms_serve_request_errors_total", kind="validation") > 0


def test_oms_predict_cli(server, local, samples, tmp_path):
    np.save(tmp_path / "x.npy", samples[:3])
    p = run_oms(
        "predict",
        server.url,
        "--model",
        "digits",
        "--input",
        str(tmp_path / "x.npy"),
        "--json",
        "--output",
        str(tmp_path / "out.npz"),
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    resp = json.loads(p.stdout)
    assert resp["model_name"] == "digits"
    with np.load(tmp_path / "out.npz") as z:
        np.testing.assert_array_equal(z["label"], local.predict({"x": samples[:3]})["label"])
    bad = run_oms("predict", server.url, "--model", "nope", "--input", str(tmp_path / "x.npy"), timeout=120)
    assert bad.returncode == 2 and "HTTP 404" in bad.stderr and "unknown model 'nope'" in bad.stderr


def test_front_end_sigkill_under_load_fails_nothing_for_clients_and_never_404_or_5xx(server, samples):
    """Last in the module: SIGKILL one of two front ends under load. Plain HTTP users may see the connections
    the killed process held reset, never an error status; ``Client`` users see nothing. Serve starts a
    replacement, which listens only once it has the routes and has found the replicas (no 404 while it starts)."""
    pids = server.frontend_pids()
    assert len(pids) == 2
    load = Load(server.url + "/v2/models/digits/infer", samples[:2], threads=6, clients=4)
    try:
        load.wait_for(40)
        os.kill(pids[0], signal.SIGKILL)
        t_kill = time.monotonic()
        load.wait_for(40, since=t_kill)  # the survivor keeps serving
        deadline, now = time.monotonic() + 120, []
        while time.monotonic() < deadline:
            now = server.frontend_pids(timeout_s=5)
            if len(now) == 2 and pids[0] not in now:
                break
            time.sleep(0.5)
        load.wait_for(40, since=time.monotonic())  # both front ends serving again
    finally:
        load.finish()
    assert len(now) == 2 and pids[0] not in now, (pids, now)
    assert load.http_errors == [], f"{len(load.http_errors)} error answers, e.g. {load.http_errors[:3]}"
    assert load.client_failures == [], load.client_failures[:3]
    resets = len(load.failures)
    print(
        f"served {len(load.ok)} requests; plain users' reset connections: {resets}; client retries: "
        f"{load.client_retries}"
    )
    answers = []
    for _ in range(24):  # fresh connections: the kernel spreads them over both front ends (the new one too)
        r = requests.post(
            server.url + "/v2/models/digits/infer",
            data=json.dumps(x_body(samples[:1])),
            headers={"Connection": "close"},
            timeout=60,
        )
        answers.append(r)
    assert [r.status_code for r in answers] == [200] * 24, [r.text for r in answers if r.status_code != 200][:2]
