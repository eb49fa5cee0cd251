"""A user's own project served (issue 15): a model of the user's code (``model.class_path``) trained by the real
``oms train`` on a CSV table and on an image folder made at test time, put behind the real ``oms serve`` (and
``Server``), asked by real clients (``oms predict``, ``Client``, ``GrpcClient``) with **raw** inputs — CSV rows,
image pixels, image files — answers the labels the model gives in-process through the run's saved
preprocessing; bad inputs are a 400 naming the column or tensor, and the server keeps serving.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from oms_process import start_oms
from userdata_testing import make_project

from oms_testing import free_port, kill_session, run_oms

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

CODE_PATH_ENV = "OMS_CODE_PATH"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("user") / "proj")
    for config, out in (("csv.yaml", "runs/csv"), ("images.yaml", "runs/img")):
        run_oms("train", config, "--out", out, "--quiet", cwd=root, timeout=600, check=True)
    return root


@pytest.fixture(scope="module")
def reference(project) -> dict[str, tuple[list[str], list[str]]]:
    """In-process, without any server: ``{run: (the model's predicted class names, the files' labels)}`` for the
    CSV's rows and the image folder's files, through the run's saved preprocessing (what ``oms eval --data``
    does)."""
    from openmindspore.data.files import read_labelled
    from openmindspore.train.run import load_run

    published = os.environ.get(CODE_PATH_ENV)
    try:
        out = {}
        for run, data in (("csv", "flowers.csv"), ("img", "photos")):
            run_dir, trainer, _ = load_run(project / "runs" / run)
            pre = run_dir.preprocessor()
            x, y = read_labelled(pre, project / data, trainer.cfg.dataset)
            out[run] = (pre.decode_labels(trainer.predict(x).argmax(axis=1)), pre.decode_labels(y))
        return out
    finally:  # load_run published the project's folder: servers below must find the code on their own
        if published is None:
            os.environ.pop(CODE_PATH_ENV, None)
        else:
            os.environ[CODE_PATH_ENV] = published


def csv_tensors(path: Path) -> dict[str, np.ndarray]:
    """The raw rows of the project's CSV as a client sends them: one [n, 1] tensor per feature column."""
    from openmindspore.data.tabular import read_csv

    header, cells = read_csv(path)
    out = {}
    for j, name in enumerate(header):
        if name == "species":
            continue
        if name == "soil":
            arr = np.empty((len(cells), 1), dtype=object)
            arr[:, 0] = [c.encode() for c in cells[:, j]]
        else:
            arr = np.asarray([float(c) if c else np.nan for c in cells[:, j]]).reshape(-1, 1)
        out[name] = arr
    return out


def names(arr: np.ndarray) -> list[str]:
    return [bytes(v).decode() for v in arr.reshape(-1)]


def start_oms_serve(*args: str, cwd: Path) -> tuple[subprocess.Popen, dict]:
    proc = start_oms("serve", *args, "--json", "--num-cpus", "2", cwd=cwd)
    line = proc.stdout.readline()  # printed once the model is loaded and routed
    if not line:
        kill_session(proc.pid)
        raise AssertionError(proc.stderr.read()[-3000:])
    return proc, json.loads(line)


def test_oms_serve_answers_raw_csv_rows_with_the_models_own_labels(project, reference, tmp_path):
    """The issue's criterion: ``oms serve`` on the run, an OIP request made from raw CSV rows, the same labels as
    the model's own prediction in-process. Served from another directory: the user's code is found through the
    run's code.json and shipped to the replica with Ray's runtime_env."""
    import grpc
    import requests

    from openmindspore.serve import Client, GrpcClient
    from openmindspore.serve.client import InferenceError

    want, truth = reference["csv"]
    csv = project / "flowers.csv"
    proc, info = start_oms_serve(
        str(project / "runs" / "csv"), "--name", "flowers", "--port", str(free_port()), "--grpc-port",
        str(free_port()), cwd=tmp_path,
    )  # fmt: skip
    try:
        url = info["url"]
        meta = requests.get(url + "/v2/models/flowers", timeout=30).json()
        assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
            ("sepal_length", "FP64", [-1, 1]),
            ("sepal_width", "FP64", [-1, 1]),
            ("petal_length", "FP64", [-1, 1]),
            ("petal_width", "FP64", [-1, 1]),
            ("soil", "BYTES", [-1, 1]),
        ]
        assert [t["name"] for t in meta["outputs"]] == ["logits", "label", "class_name"]
        assert meta["parameters"]["class_names"] == ["setosa", "versicolor", "virginica"]
        assert meta["parameters"]["model"] == "nets.TinyNet" and meta["parameters"]["preprocessing"] == "tabular"

        # oms predict --csv: the raw rows of the file (the label column is ignored), one request
        p = run_oms("predict", url, "--model", "flowers", "--csv", str(csv), "--json", timeout=120)
        assert p.returncode == 0, p.stderr
        outputs = {t["name"]: t["data"] for t in json.loads(p.stdout)["outputs"]}
        assert outputs["class_name"] == want
        served_accuracy = float(np.mean(np.asarray(outputs["class_name"]) == np.asarray(truth)))
        p = run_oms("eval", str(project / "runs" / "csv"), "--data", str(csv), "--json", cwd=project, timeout=300)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout.strip().splitlines()[-1])["accuracy"] == pytest.approx(served_accuracy, abs=1e-12)

        rows = csv_tensors(csv)
        with Client(url, retry_s=0) as c:
            assert names(c.infer("flowers", rows)["class_name"]) == want  # BYTES inputs travel binary
            assert names(c.infer("flowers", {k: v[:5] for k, v in rows.items()})["class_name"]) == want[:5]
            with pytest.raises(InferenceError) as e:  # a missing column
                c.infer("flowers", {k: v for k, v in rows.items() if k != "petal_width"})
            assert e.value.status == 400 and "missing input(s) ['petal_width']" in e.value.message
            text = {"name": "sepal_width", "shape": [1, 1], "datatype": "FP64", "data": ["wide"]}
            with pytest.raises(InferenceError) as e:  # a string in a numeric column, as JSON
                c.infer_json("flowers", {"inputs": [text]})
            assert e.value.status == 400 and "input 'sepal_width'" in e.value.message
            assert "not valid FP64" in e.value.message
            inf = dict(rows, petal_length=np.full((len(rows["soil"]), 1), np.inf))
            with pytest.raises(InferenceError) as e:  # found on the replica: still a 400 naming the column
                c.infer("flowers", inf)
            assert e.value.status == 400 and "input 'petal_length' sample 0: inf is not a finite number" in (
                e.value.message
            )
            assert "Traceback" not in e.value.message and "ray::" not in e.value.message
        with GrpcClient(info["grpc"], retry_s=0) as g:
            assert names(g.infer("flowers", rows)["class_name"]) == want
            with pytest.raises(grpc.RpcError) as e:
                g.infer("flowers", dict(rows, sepal_length=rows["sepal_length"].astype(np.float32)))
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'sepal_length'" in e.value.details()

        short = tmp_path / "short.csv"
        short.write_text("sepal_length,sepal_width,soil\n5.1,3.5,sand\n")
        p = run_oms("predict", url, "--model", "flowers", "--csv", str(short), timeout=120)
        assert p.returncode == 2 and "missing column(s) ['petal_length', 'petal_width']" in p.stderr, p.stderr

        with Client(url, retry_s=0) as c:  # it keeps serving
            assert names(c.infer("flowers", rows)["class_name"]) == want
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, proc.stderr.read()[-3000:]
    finally:
        if proc.poll() is None:
            kill_session(proc.pid)
            proc.wait()


def test_image_run_served_from_raw_pixels_and_image_files(project, reference):
    """Images as UINT8 pixels (binary tensors) and as the files' bytes (``?input=encoded``): the model's own
    labels; an image of the wrong size or an unreadable file is a 400 and the server keeps serving."""
    from PIL import Image

    from openmindspore.data.images import list_imagefolder
    from openmindspore.serve import Client, Server
    from openmindspore.serve.client import InferenceError

    want, _ = reference["img"]
    paths, _ = list_imagefolder(project / "photos")
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    files = np.empty(len(paths), dtype=object)
    files[:] = [p.read_bytes() for p in paths]
    run = str(project / "runs" / "img")
    with Server(port=free_port(), num_cpus=2) as srv:  # code path not published: the replica uses code.json
        srv.deploy("photos", run, batching={"max_batch": 8, "max_delay_ms": 5})
        srv.deploy("photo-files", f"{run}?input=encoded", batching={"max_batch": 8, "max_delay_ms": 5})
        with Client(srv.url, retry_s=0, binary=True) as c:
            assert c.model_metadata("photos")["inputs"] == [
                {"name": "image", "datatype": "UINT8", "shape": [-1, 10, 12, 3]}
            ]
            assert names(c.infer("photos", pixels)["class_name"]) == want
            assert names(c.infer("photo-files", files)["class_name"]) == want
            with pytest.raises(InferenceError) as e:
                c.infer("photos", pixels[:2, :8])
            assert e.value.status == 400
            assert "input 'image': expected shape [-1, 10, 12, 3], received [2, 8, 12, 3]" in e.value.message
            bad = files[:3].copy()
            bad[1] = b"GIF89a but not really"
            with pytest.raises(InferenceError) as e:
                c.infer("photo-files", bad)
            assert e.value.status == 400 and "input 'image' sample 1: not a readable image file" in e.value.message
            assert "Traceback" not in e.value.message

        two = [str(paths[0]), str(paths[-1])]
        for model in ("photos", "photo-files"):
            p = run_oms("predict", srv.url, "--model", model, "--input", *two, "--json", timeout=120)
            assert p.returncode == 0, p.stderr
            outputs = {t["name"]: t["data"] for t in json.loads(p.stdout)["outputs"]}
            assert outputs["class_name"] == [want[0], want[-1]], model
        with Client(srv.url, retry_s=0) as c:  # it keeps serving
            assert names(c.infer("photos", pixels[:4])["class_name"]) == want[:4]


def test_an_exported_user_data_run_takes_the_same_raw_inputs(project, reference, tmp_path):
    """``oms export`` of a CSV run carries its preprocessing: the MindIR file takes raw rows too."""
    from openmindspore.serve.registry import load_predictor

    out = tmp_path / "flowers.mindir"
    p = run_oms("export", str(project / "runs" / "csv"), "--out", str(out), "--json", timeout=600)
    assert p.returncode == 0, p.stderr
    exported = load_predictor(str(out))
    served = load_predictor(str(project / "runs" / "csv"))
    assert exported.metadata()["inputs"] == served.metadata()["inputs"]
    assert exported.metadata()["outputs"] == served.metadata()["outputs"]
    rows = csv_tensors(project / "flowers.csv")
    got, direct = exported.predict(rows), served.predict(rows)
    np.testing.assert_allclose(got["logits"], direct["logits"], rtol=1e-5, atol=1e-5)
    assert names(got["class_name"]) == names(direct["class_name"]) == reference["csv"][0]
