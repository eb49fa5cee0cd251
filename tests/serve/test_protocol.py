"""Open Inference Protocol parsing and validation (plain numpy, no server)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from openmindspore.serve.protocol import (
    ProtocolError,
    TensorSpec,
    encode_infer_response,
    parse_infer_request,
    tensor_from_json,
    tensor_to_json,
)

SPECS = [TensorSpec("x", "FP32", (2, 3))]
OUTS = [TensorSpec("logits", "FP32", (4,)), TensorSpec("label", "INT64", ())]


def body(name="x", shape=(2, 2, 3), datatype="FP32", data=None, **extra):
    n = int(np.prod(shape))
    return {
        "inputs": [
            {"name": name, "shape": list(shape), "datatype": datatype, "data": list(range(n)) if data is None else data}
        ],
        **extra,
    }


def test_parses_flat_and_nested_row_major_data():
    req = parse_infer_request(json.dumps(body(id="r1")), SPECS, OUTS)
    assert req.n == 2 and req.id == "r1"
    np.testing.assert_array_equal(req.inputs["x"], np.arange(12, dtype=np.float32).reshape(2, 2, 3))
    nested = np.arange(12).reshape(2, 2, 3).tolist()
    req2 = parse_infer_request(body(data=nested), SPECS)
    np.testing.assert_array_equal(req2.inputs["x"], req.inputs["x"])
    assert req2.inputs["x"].dtype == np.float32


@pytest.mark.parametrize(
    "b, words",
    [
        (body(name="image"), ["unknown input 'image'", "['x']"]),
        (body(datatype="FP64"), ["input 'x'", "expected datatype FP32", "received FP64"]),
        (body(shape=(2, 3, 2)), ["input 'x'", "expected shape [-1, 2, 3]", "received [2, 3, 2]"]),
        (body(shape=(6,)), ["input 'x'", "expected shape [-1, 2, 3]", "received [6]"]),
        (body(data=[1, 2, 3]), ["input 'x'", "needs 12 elements", "received 3"]),
        (body(datatype="STRING"), ["input 'x'", "STRING", "not supported"]),
        (body(shape=(0, 2, 3), data=[]), ["batch dimension must be >= 1"]),
        ({"inputs": []}, ["non-empty 'inputs'", "['x']"]),
        ({"inputs": [{"name": "x"}]}, ["missing field", "shape"]),
        (body(outputs=[{"name": "probs"}]), ["unknown output", "probs"]),
        ([1, 2], ["JSON object"]),
    ],
)
def test_bad_requests_name_input_expected_and_received(b, words):
    with pytest.raises(ProtocolError) as e:
        parse_infer_request(json.dumps(b), SPECS, OUTS)
    assert e.value.status == 400
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    assert set(e.value.body()) == {"error"}


def test_malformed_json_is_400():
    with pytest.raises(ProtocolError) as e:
        parse_infer_request(b'{"inputs": [', SPECS)
    assert e.value.status == 400 and "not valid JSON" in str(e.value)


def test_missing_input_and_batch_disagreement():
    specs = [TensorSpec("a", "FP32", (1,)), TensorSpec("b", "INT64", ())]
    with pytest.raises(ProtocolError, match=r"missing input\(s\) \['b'\]"):
        parse_infer_request({"inputs": [tensor_to_json("a", np.zeros((2, 1), np.float32))]}, specs)
    with pytest.raises(ProtocolError, match="disagree on the batch dimension"):
        parse_infer_request(
            {
                "inputs": [
                    tensor_to_json("a", np.zeros((2, 1), np.float32)),
                    tensor_to_json("b", np.zeros((3,), np.int64)),
                ]
            },
            specs,
        )


def test_response_round_trips_through_json():
    out = {"logits": np.arange(8, dtype=np.float32).reshape(2, 4), "label": np.array([3, 3], np.int64)}
    resp = json.loads(json.dumps(encode_infer_response("m", "2", out, "abc", ["label"])))
    assert resp["model_name"] == "m" and resp["model_version"] == "2" and resp["id"] == "abc"
    assert [o["name"] for o in resp["outputs"]] == ["label"]
    name, arr = tensor_from_json(resp["outputs"][0])
    assert name == "label" and arr.dtype == np.int64 and arr.tolist() == [3, 3]
    assert TensorSpec.from_metadata(OUTS[0].metadata()) == OUTS[0] and OUTS[0].metadata()["shape"] == [-1, 4]
