"""The numpy YOLOS processor equals Hugging Face's slow (PIL/numpy) ``YolosImageProcessor``."""

from __future__ import annotations

import numpy as np
import pytest

from oms_testing import from_test_extra
from openmindspore.errors import ConfigError
from openmindspore.models.yolos.processor import YolosImageProcessor, get_size_with_aspect_ratio

torch = from_test_extra("torch")
transformers = from_test_extra("transformers")


def _reference(**kw):
    from transformers.models.yolos.image_processing_pil_yolos import YolosImageProcessorPil

    return YolosImageProcessorPil(**kw)


def _images(rng):
    # landscape, portrait, one that hits the longest-edge cap, one already at the target short side
    return [
        rng.integers(0, 256, (60, 90, 3), dtype=np.uint8),
        rng.integers(0, 256, (100, 41, 3), dtype=np.uint8),
        rng.integers(0, 256, (40, 150, 3), dtype=np.uint8),
        rng.integers(0, 256, (64, 77, 3), dtype=np.uint8),
    ]


def _annotations(rng, images):
    anns = []
    for i, im in enumerate(images):
        h, w = im.shape[:2]
        objs = []
        for j in range(3):
            x, y = rng.uniform(-5, w - 5), rng.uniform(-5, h - 5)
            bw, bh = rng.uniform(1, w / 2), rng.uniform(1, h / 2)
            objs.append(
                {
                    "bbox": [x, y, bw, bh],
                    "category_id": int(rng.integers(1, 5)),
                    "area": bw * bh,
                    "iscrowd": int(j == 2 and i == 1),
                }
            )
        objs.append({"bbox": [3.0, 3.0, 0.0, 5.0], "category_id": 1, "area": 0.0, "iscrowd": 0})  # degenerate
        anns.append({"image_id": i + 10, "annotations": objs})
    return anns


@pytest.mark.parity
@pytest.mark.parametrize("size", [dict(shortest_edge=64, longest_edge=100), dict(shortest_edge=48, longest_edge=400)])
def test_preprocess_matches_reference(size):
    rng = np.random.default_rng(0)
    images = _images(rng)
    anns = _annotations(rng, images)
    ref = _reference(size=size)(images=images, annotations=anns, return_tensors="np")
    ours = YolosImageProcessor(**size)(images, anns)
    assert ours["pixel_values"].shape == tuple(ref["pixel_values"].shape)
    np.testing.assert_allclose(ours["pixel_values"], ref["pixel_values"], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(ours["pixel_mask"], ref["pixel_mask"])
    for o, r in zip(ours["labels"], ref["labels"]):
        np.testing.assert_array_equal(o["class_labels"], r["class_labels"])
        np.testing.assert_allclose(o["boxes"], r["boxes"], atol=1e-6)
        np.testing.assert_allclose(o["area"], r["area"], rtol=1e-6)
        np.testing.assert_array_equal(o["size"], r["size"])
        np.testing.assert_array_equal(o["orig_size"], r["orig_size"])
        np.testing.assert_array_equal(o["iscrowd"], r["iscrowd"])


@pytest.mark.parity
def test_preprocess_pil_and_float_inputs_match_reference():
    from PIL import Image

    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    flt = rng.random((40, 33, 3)).astype(np.float32)
    size = dict(shortest_edge=32, longest_edge=80)
    for img in (Image.fromarray(arr), flt):
        ref = _reference(size=size)(images=[img], return_tensors="np")
        ours = YolosImageProcessor(**size)([img])
        np.testing.assert_allclose(ours["pixel_values"], ref["pixel_values"], atol=1e-5, rtol=0)


def test_size_rule_multiple_of_16():
    for hw in [(480, 640), (1000, 300), (800, 1333), (17, 19)]:
        h, w = get_size_with_aspect_ratio(hw, 512, 864)
        assert h % 16 == 0 and w % 16 == 0 and max(h, w) <= 864
    assert get_size_with_aspect_ratio((480, 640), 512, 1333) == (512, 672)


@pytest.mark.parity
def test_post_process_matches_reference():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((3, 7, 5)).astype(np.float32) * 3
    boxes = rng.random((3, 7, 4)).astype(np.float32)
    sizes = [(48, 64), (100, 30), (7, 9)]

    class Out:
        pass

    o = Out()
    o.logits, o.pred_boxes = torch.from_numpy(logits), torch.from_numpy(boxes)
    ref = _reference().post_process_object_detection(o, threshold=0.3, target_sizes=sizes)
    ours = YolosImageProcessor.post_process_object_detection(logits, boxes, threshold=0.3, target_sizes=sizes)
    assert sum(len(r["scores"]) for r in ref) > 3  # some survive the threshold
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a["scores"], b["scores"].numpy(), atol=1e-6)
        np.testing.assert_array_equal(a["labels"], b["labels"].numpy())
        np.testing.assert_allclose(a["boxes"], b["boxes"].numpy(), atol=1e-5)


def test_tiny_output_size_is_a_clear_error():
    """Upstream: a very elongated image whose short side floors to 0 makes the reference crash inside its
    resize (``SizeDict(height=0, ...)`` ValueError); ours names the cause instead."""
    with pytest.raises(ConfigError, match="multiple of 16"):
        YolosImageProcessor(shortest_edge=64, longest_edge=100)([np.zeros((30, 200, 3), np.uint8)])


def test_processor_errors():
    with pytest.raises(ConfigError, match="annotations"):
        YolosImageProcessor()([np.zeros((20, 20, 3), np.uint8)], [{"image_id": 1}, {"image_id": 2}])
    with pytest.raises(ConfigError, match="image.shape"):
        YolosImageProcessor()([np.zeros((20, 20, 7), np.uint8)])
    with pytest.raises(ConfigError, match="target_sizes"):
        YolosImageProcessor.post_process_object_detection(
            np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), target_sizes=[(1, 1)]
        )


def test_processor_block_of_a_model_json_rejects_unknown_keys_with_did_you_mean():
    assert YolosImageProcessor.from_dict({"shortest_edge": 32, "longest_edge": 48}) == YolosImageProcessor(32, 48)
    with pytest.raises(ConfigError, match=r"processor has 2 problems: processor\.shortest_egde=32 .*did you mean"):
        YolosImageProcessor.from_dict({"shortest_egde": 32, "do_rescal": False})
