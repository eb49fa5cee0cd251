"""The raw-input contract of runs on the user's files (no server, no training): OIP tensors made from the raw
files go through the fitted preprocessing bitwise as training put the files through it; bad inputs are a
400 naming the column or tensor; the outputs carry class names; where a user model's code is found."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import sys

import numpy as np
import pytest
from userdata_testing import write_flowers_csv, write_image_folder, write_npz

from openmindspore.errors import ConfigError
from openmindspore.serve.outputs import ModelOutputs
from openmindspore.serve.protocol import ProtocolError, parse_infer_request
from openmindspore.serve.raw_inputs import ArrayInputs, ImageInputs, TabularInputs, run_inputs
from openmindspore.serve.registry import InputError
from openmindspore.serve.user_code import CODE_PATH_ENV, code_folders, publish_code_folders, use_code_folders


def _load(spec: dict):
    from openmindspore.data import load_dataset

    return load_dataset(spec)


@pytest.fixture(scope="module")
def flowers(tmp_path_factory):
    """``(preprocessor, header, raw cells [N, F] as read from the file)`` of a CSV with a text column and an
    empty cell."""
    from openmindspore.data.tabular import read_csv

    path = write_flowers_csv(tmp_path_factory.mktemp("csv") / "flowers.csv")
    pre = _load({"format": "csv", "path": str(path), "label": "species"}).preprocessor
    header, cells = read_csv(path)
    return pre, header, cells


def tensors_from_rows(header: list[str], cells: np.ndarray, specs) -> dict[str, np.ndarray]:
    """What a client sends for raw CSV rows: one [n, 1] tensor per column, FP64 (empty: NaN) or BYTES."""
    out = {}
    for s in specs:
        col = cells[:, header.index(s.name)]
        if s.datatype == "FP64":
            out[s.name] = np.asarray([float(c) if c else np.nan for c in col]).reshape(-1, 1)
        else:
            arr = np.empty((len(col), 1), dtype=object)
            arr[:, 0] = [c.encode() for c in col]
            out[s.name] = arr
    return out


def test_csv_rows_become_the_model_inputs_training_made(flowers):
    pre, header, cells = flowers
    raw = run_inputs(tuple(pre.input_shape), pre)
    assert isinstance(raw, TabularInputs)
    assert [(s.name, s.datatype, s.shape) for s in raw.specs] == [
        ("sepal_length", "FP64", (1,)),
        ("sepal_width", "FP64", (1,)),
        ("petal_length", "FP64", (1,)),
        ("petal_width", "FP64", (1,)),
        ("soil", "BYTES", (1,)),
    ]
    sent = tensors_from_rows(header, cells, raw.specs)
    assert np.isnan(sent["sepal_width"][7, 0])  # the file's empty cell travels as NaN
    features = [header.index(n) for n in pre.feature_names]
    want = pre.transform_rows(cells[:, features])
    got = raw.to_model(dict(reversed(sent.items())))  # tensors may come in any order
    assert got.dtype == np.float32 and got.shape == (len(cells), pre.input_shape[0])
    np.testing.assert_array_equal(got, want)  # bitwise: same statistics, same arithmetic
    assert got[7, 1] == np.float32((pre.columns[1]["fill"] - pre.columns[1]["mean"]) / pre.columns[1]["std"])
    np.testing.assert_array_equal(raw.to_model(raw.example()).shape, (1, pre.input_shape[0]))


def test_an_unseen_category_is_all_zeros_like_training(flowers):
    pre, header, cells = flowers
    raw = TabularInputs(pre)
    sent = tensors_from_rows(header, cells[:2], raw.specs)
    sent["soil"][0, 0] = b"gravel"
    x = raw.to_model(sent)
    assert x[0, -2:].tolist() == [0.0, 0.0] and sorted(x[1, -2:].tolist()) == [0.0, 1.0]


def _body(tensors: dict[str, np.ndarray]) -> dict:
    from openmindspore.serve.protocol import tensor_to_json

    return {"inputs": [tensor_to_json(k, v) for k, v in tensors.items()]}


def test_bad_csv_requests_are_400_naming_the_column(flowers):
    pre, header, cells = flowers
    raw = TabularInputs(pre)
    good = tensors_from_rows(header, cells[:3], raw.specs)
    parse_infer_request(_body(good), raw.specs)  # accepted as is

    missing = {k: v for k, v in good.items() if k != "petal_width"}
    with pytest.raises(ProtocolError) as e:
        parse_infer_request(_body(missing), raw.specs)
    assert e.value.status == 400 and "missing input(s) ['petal_width']" in str(e.value)

    text = _body(good)
    text["inputs"][1]["data"][0] = "wide"
    with pytest.raises(ProtocolError) as e:
        parse_infer_request(text, raw.specs)
    assert e.value.status == 400 and "'sepal_width'" in str(e.value) and "not valid FP64" in str(e.value)

    as_bytes = _body(good)
    as_bytes["inputs"][0] = {"name": "sepal_length", "shape": [3, 1], "datatype": "BYTES", "data": ["5", "6", "7"]}
    with pytest.raises(ProtocolError) as e:
        parse_infer_request(as_bytes, raw.specs)
    assert "'sepal_length': expected datatype FP64, received BYTES" in str(e.value)

    infinite = dict(good, petal_length=np.asarray([[1.0], [np.inf], [2.0]]))
    with pytest.raises(InputError, match=r"input 'petal_length' sample 1: inf is not a finite number"):
        raw.to_model(infinite)
    latin = dict(good)
    latin["soil"] = good["soil"].copy()
    latin["soil"][2, 0] = "sable-\u00e9".encode("latin-1")
    with pytest.raises(InputError, match=r"input 'soil' sample 2: not UTF-8 text"):
        raw.to_model(latin)


def test_images_as_pixels_or_files_become_the_model_inputs_training_made(tmp_path):
    from PIL import Image

    from openmindspore.data.images import decode_images, list_imagefolder

    root = write_image_folder(tmp_path / "photos", per_class=3, size=(10, 12))
    pre = _load({"format": "imagefolder", "path": str(root)}).preprocessor
    paths, _ = list_imagefolder(root)
    want = pre.transform_images(decode_images(pre, paths))

    pixels = ImageInputs(pre)
    assert [(s.name, s.datatype, s.shape) for s in pixels.specs] == [("image", "UINT8", (10, 12, 3))]
    hwc = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    np.testing.assert_array_equal(pixels.to_model({"image": hwc}), want)

    files = run_inputs(tuple(pre.input_shape), pre, "encoded")
    assert [(s.name, s.datatype, s.shape) for s in files.specs] == [("image", "BYTES", ())]
    data = np.empty(len(paths), dtype=object)
    data[:] = [p.read_bytes() for p in paths]
    np.testing.assert_array_equal(files.to_model({"image": data}), want)
    assert files.to_model(files.example()).shape == (1, 3, 10, 12)

    big = io.BytesIO()
    Image.open(paths[0]).resize((24, 20), Image.Resampling.NEAREST).save(big, format="PNG")
    data[1] = big.getvalue()  # a file of another size is resized on the server, as training resized
    assert files.to_model({"image": data}).shape == (len(paths), 3, 10, 12)
    data[2] = b"not an image"
    with pytest.raises(InputError, match=r"input 'image' sample 2: not a readable image file"):
        files.to_model({"image": data})
    with pytest.raises(ProtocolError) as e:
        parse_infer_request(_body({"image": hwc[:, :8]}), pixels.specs)
    assert "input 'image': expected shape [-1, 10, 12, 3], received [9, 8, 12, 3]" in str(e.value)


def test_arrays_are_standardised_on_the_server_and_options_must_fit_the_run(tmp_path):
    data = _load({"format": "npz", "path": str(write_npz(tmp_path / "d.npz"))})
    pre = data.preprocessor
    raw = run_inputs(tuple(pre.input_shape), pre)
    assert isinstance(raw, ArrayInputs) and [(s.name, s.datatype) for s in raw.specs] == [("x", "FP32")]
    with np.load(tmp_path / "d.npz") as z:
        x = z["x"]
    np.testing.assert_array_equal(raw.to_model({"x": x}), pre.transform_array(x))
    with pytest.raises(ConfigError, match="input='encoded'.*only runs on images"):
        run_inputs(tuple(pre.input_shape), pre, "encoded")
    with pytest.raises(ConfigError, match="preprocessing"):
        run_inputs((7,), pre)
    plain = run_inputs((1, 8, 8), None)
    assert [(s.name, s.datatype, s.shape) for s in plain.specs] == [("x", "FP32", (1, 8, 8))]


def test_outputs_carry_the_class_names():
    logits = np.asarray([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]], np.float32)
    named = ModelOutputs("classification", 3, ["setosa", "versicolor", "virginica"])
    assert [(s.name, s.datatype, s.shape) for s in named.specs] == [
        ("logits", "FP32", (3,)),
        ("label", "INT64", ()),
        ("class_name", "BYTES", ()),
    ]
    out = named(logits)
    assert out["label"].tolist() == [1, 0] and out["class_name"].tolist() == [b"versicolor", b"setosa"]
    assert [s.name for s in ModelOutputs("classification", 3, None).specs] == ["logits", "label"]
    reg = ModelOutputs("regression", 1, None)
    assert [(s.name, s.datatype, s.shape) for s in reg.specs] == [("prediction", "FP32", (1,))]
    assert reg(np.asarray([[1.5], [2.5]]))["prediction"].tolist() == [[1.5], [2.5]]


def test_where_a_user_models_code_is_found(tmp_path, monkeypatch):
    monkeypatch.delenv(CODE_PATH_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    code, moved, run = tmp_path / "code", tmp_path / "moved", tmp_path / "run"
    for d in (code, moved, run):
        d.mkdir()
    (moved / "tabnets_x1.py").write_text("VALUE = 1\n")
    (run / "code.json").write_text(json.dumps({"code_path": [str(code)]}))
    model = {"class_path": "tabnets_x1.Net"}
    assert code_folders(run, {"name": "mlp"}) is None
    with pytest.raises(ConfigError) as e:  # the recorded folder no longer holds the module
        code_folders(run, model)
    assert "--code-dir" in str(e.value) and str(code) in str(e.value) and "tabnets_x1.py" in str(e.value)
    publish_code_folders([str(moved)])
    assert code_folders(run, model) == [str(moved)]
    with pytest.raises(ConfigError, match="--code-dir"):
        publish_code_folders([str(tmp_path / "nowhere")])
    monkeypatch.delenv(CODE_PATH_ENV)
    (code / "tabnets_x1.py").write_text("VALUE = 2\n")
    assert code_folders(run, model) == [str(code)]  # the folder the run recorded
    monkeypatch.setattr(sys, "path", list(sys.path))
    use_code_folders("tabnets_x1.Net", [str(code)])  # replica side: appended when not shipped
    assert sys.path[-1] == str(code) and importlib.import_module("tabnets_x1").VALUE == 2
    monkeypatch.delitem(sys.modules, "tabnets_x1")


def test_oms_serve_names_code_dir_when_the_code_is_gone(tmp_path):
    from oms_testing import run_oms

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("model: {class_path: gone_nets_x2.TinyNet}\ndataset: {format: csv}\n")
    (run / "code.json").write_text(json.dumps({"code_path": [str(tmp_path / "deleted")]}))
    (run / "checkpoints" / "LATEST").write_text("step_00000001")
    payload = b"weights"
    (run / "checkpoints" / "step_00000001.safetensors").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    (run / "checkpoints" / "step_00000001.json").write_text(json.dumps({"sha256": sha, "step": 1}))
    (run / "preprocess.json").write_text(
        json.dumps({"kind": "array", "task": "classification", "input_shape": [4], "class_names": ["a", "b"]})
    )
    p = run_oms("serve", str(run), cwd=tmp_path, timeout=120)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert "model.class_path='gone_nets_x2.TinyNet'" in lines[0] and "--code-dir" in lines[0]
    p = run_oms("serve", str(run), "--code-dir", str(tmp_path / "nowhere"), cwd=tmp_path, timeout=120)
    assert p.returncode == 2 and "--code-dir=" in p.stderr, p.stderr
