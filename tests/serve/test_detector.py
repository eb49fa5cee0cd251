"""The YOLOS predictor behind ``oms serve``: sources, OIP specs, padding/sorting, equality with ``oms detect``."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.errors import ConfigError
from openmindspore.serve.detector import DetectorOptions
from openmindspore.serve.registry import load_predictor, resolve_source


def _reference(run, images, threshold):
    """Independent path: the processor, the model and the post-processing of ``oms detect``, one image at a time."""
    from mindspore import Tensor

    from openmindspore.models.yolos.inference import load_detector

    model, proc, _ = load_detector("yolos", run / "model.ckpt")
    model.set_train(False)
    out = []
    for im in images:
        logits, boxes = model(Tensor(np.asarray(proc([im])["pixel_values"], np.float32)))[:2]
        out += proc.post_process_object_detection(logits.asnumpy(), boxes.asnumpy(), threshold, [im.shape[:2]])
    return out


def test_detection_run_and_checkpoint_resolve_to_the_detector_kind(yolos_run):
    rs = resolve_source(yolos_run)
    assert rs.kind == "detector" and rs.checkpoint == yolos_run / "model.ckpt"
    rs = resolve_source(f"{yolos_run / 'model.ckpt'}?threshold=0.3&image_size=64x96")
    assert rs.kind == "detector" and rs.options == DetectorOptions(threshold=0.3, image_size=(64, 96))


def test_detector_specs_padding_and_equality_with_detect(yolos_run, yolos_images, tiny_yolos):
    K, (h, w) = tiny_yolos["k"], tiny_yolos["image_size"]
    loose = load_predictor(f"{yolos_run}?threshold=0.0").predict({"image": yolos_images})
    # a threshold between the scores of the first image: some detections kept, the rest padded
    s0 = np.sort(loose["scores"][0])
    thr = float((s0[K // 2 - 1] + s0[K // 2]) / 2)
    pred = load_predictor(f"{yolos_run}?threshold={thr}")
    meta = pred.metadata()
    assert meta["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, h, w, 3]}]
    assert meta["outputs"] == [
        {"name": "boxes", "datatype": "FP32", "shape": [-1, K, 4]},
        {"name": "scores", "datatype": "FP32", "shape": [-1, K]},
        {"name": "labels", "datatype": "INT64", "shape": [-1, K]},
        {"name": "count", "datatype": "INT64", "shape": [-1]},
    ]
    assert meta["kind"] == "detector" and meta["threshold"] == pytest.approx(thr) and meta["id2label"]["1"] == "circle"
    got = pred.predict({"image": yolos_images})
    want = _reference(yolos_run, yolos_images, thr)
    assert 0 < got["count"][0] < K
    for i, ref in enumerate(want):
        c = int(got["count"][i])
        order = np.argsort(-ref["scores"], kind="stable")
        assert c == len(ref["scores"])
        np.testing.assert_allclose(got["scores"][i, :c], ref["scores"][order], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(got["labels"][i, :c], ref["labels"][order])
        np.testing.assert_allclose(got["boxes"][i, :c], ref["boxes"][order], rtol=1e-4, atol=1e-3)
        assert np.all(np.diff(got["scores"][i, :c]) <= 0)  # best first
        assert (
            np.all(got["scores"][i, c:] == 0)
            and np.all(got["labels"][i, c:] == -1)
            and np.all(got["boxes"][i, c:] == 0)
        )
    # a batch answers exactly what one image at a time answers (requests of different clients batch together)
    one = pred.predict({"image": yolos_images[1:]})
    np.testing.assert_array_equal(one["count"], got["count"][1:])
    np.testing.assert_allclose(one["scores"], got["scores"][1:], rtol=1e-4, atol=1e-5)


def test_compiled_detector_answers_what_the_op_by_op_one_does(yolos_run, yolos_images):
    """The served model runs as one ``ms.jit`` graph per batch size by default; ``compiled=false`` runs it
    op by op: the same detections."""
    fast = load_predictor(f"{yolos_run}?threshold=0.0")
    slow = load_predictor(f"{yolos_run}?threshold=0.0&compiled=false")
    assert fast._forward is not fast.model and slow._forward is slow.model
    for batch in (yolos_images, yolos_images[:1]):  # two batch sizes: two graphs
        a, b = fast.predict({"image": batch}), slow.predict({"image": batch})
        np.testing.assert_array_equal(a["count"], b["count"])
        np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a["boxes"], b["boxes"], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "query, field",
    [
        ("threshold=1.5", "threshold"),
        ("threshold=abc", "threshold"),
        ("image_size=8x8", "image_size"),
        ("image_size=big", "image_size"),
    ],
)
def test_detector_option_errors_name_the_field(yolos_run, query, field):
    with pytest.raises(ConfigError, match=field):
        load_predictor(f"{yolos_run}?{query}")


def test_encoded_images_as_bytes_tensors_over_rest_and_grpc(yolos_run, yolos_images, tiny_yolos):
    """``input=encoded``: PNG bytes in, boxes in the original image's pixels; a bad file fails only its request."""
    import io
    from concurrent.futures import ThreadPoolExecutor

    from local_oip import LocalServer
    from PIL import Image

    from openmindspore.serve.client import Client, InferenceError
    from openmindspore.serve.grpc_client import GrpcClient

    h, w = tiny_yolos["image_size"]
    big = Image.fromarray(yolos_images[0]).resize((2 * w, 2 * h), Image.NEAREST)
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    png = np.empty((1,), dtype=object)
    png[0] = buf.getvalue()
    pixels = load_predictor(f"{yolos_run}?threshold=0.2")
    sent = np.asarray(big.resize((w, h), Image.BILINEAR), np.uint8)[None]  # what the server decodes to
    want = pixels.predict({"image": sent})
    encoded = load_predictor(f"{yolos_run}?threshold=0.2&input=encoded")
    assert encoded.metadata()["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    garbage = np.empty((1,), dtype=object)
    garbage[0] = b"not an image"
    with LocalServer({"det": encoded}, batching={"max_batch": 4, "max_delay_ms": 300}) as srv:
        with ThreadPoolExecutor(2) as pool:  # concurrent (test_batcher checks that a shared batch is split)
            good = pool.submit(lambda: Client(srv.url, retry_s=0).infer("det", png))
            bad = pool.submit(lambda: Client(srv.url, retry_s=0).infer("det", garbage))
            got = good.result()
            with pytest.raises(InferenceError) as e:
                bad.result()
        assert (
            e.value.status == 400 and "input 'image'" in e.value.message and "not a readable image" in e.value.message
        )
        np.testing.assert_array_equal(got["count"], want["count"])
        np.testing.assert_allclose(got["boxes"], want["boxes"] * 2, rtol=1e-4, atol=2e-3)  # original pixels
        with GrpcClient(srv.grpc_target, retry_s=0) as g:
            np.testing.assert_array_equal(g.infer("det", {"image": png})["count"], want["count"])
