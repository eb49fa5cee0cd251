"""Hungarian matcher and DETR loss equal the Hugging Face reference (values and gradients)."""

from __future__ import annotations

import numpy as np
import pytest

from oms_testing import from_test_extra
from openmindspore.errors import ConfigError
from openmindspore.models.yolos.loss import DetrLossWeights, detr_loss, generalized_box_iou, hungarian_match
from vision_testing import detr_inputs

torch = from_test_extra("torch")
transformers = from_test_extra("transformers")


@pytest.fixture(scope="module", autouse=True)
def _ms():
    import mindspore as ms

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")


_inputs = detr_inputs


def _torch_targets(targets):
    return [
        {"class_labels": torch.from_numpy(t["class_labels"]), "boxes": torch.from_numpy(t["boxes"])} for t in targets
    ]


@pytest.mark.parity
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matcher_equals_reference(seed):
    from transformers.loss.loss_for_object_detection import HungarianMatcher

    logits, boxes, targets = _inputs(seed)
    ref = HungarianMatcher(class_cost=1, bbox_cost=5, giou_cost=2)(
        {"logits": torch.from_numpy(logits), "pred_boxes": torch.from_numpy(boxes)}, _torch_targets(targets)
    )
    ours = hungarian_match(logits, boxes, targets, DetrLossWeights(4))
    for (i, j), (ri, rj) in zip(ours, ref):
        np.testing.assert_array_equal(i, ri.numpy())
        np.testing.assert_array_equal(j, rj.numpy())


@pytest.mark.parity
@pytest.mark.parametrize("seed,counts", [(0, (3, 0, 5)), (4, (1, 2, 8)), (5, (0, 0, 0))])
def test_loss_and_gradients_equal_reference(seed, counts):
    import mindspore as ms
    from transformers.loss.loss_for_object_detection import ForObjectDetectionLoss

    logits, boxes, targets = _inputs(seed, counts)
    cfg = transformers.YolosConfig(num_labels=4, eos_coefficient=0.1)
    lt = torch.from_numpy(logits).requires_grad_(True)
    bt = torch.from_numpy(boxes).requires_grad_(True)
    ref_loss, ref_dict, _ = ForObjectDetectionLoss(lt, _torch_targets(targets), "cpu", bt, cfg)
    ref_loss.backward()

    w = DetrLossWeights(4)
    comps = {}

    def fn(lg, bx):
        total, d = detr_loss(lg, bx, targets, w)
        comps.update(d)
        return total

    loss, (g_lg, g_bx) = ms.value_and_grad(fn, grad_position=(0, 1))(ms.Tensor(logits), ms.Tensor(boxes))
    assert abs(float(loss.asnumpy()) - ref_loss.item()) < 1e-5
    for k in ("loss_ce", "loss_bbox", "loss_giou"):
        assert abs(float(comps[k].asnumpy()) - ref_dict[k].item()) < 1e-5, k
    assert comps["cardinality_error"] == pytest.approx(ref_dict["cardinality_error"].item())
    np.testing.assert_allclose(g_lg.asnumpy(), lt.grad.numpy(), atol=1e-6)
    np.testing.assert_allclose(g_bx.asnumpy(), bt.grad.numpy(), atol=1e-6)


def test_giou_independent_values():
    a = np.array([[0, 0, 2, 2]], np.float32)
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [4, 4, 5, 5]], np.float32)
    g = generalized_box_iou(a, b)[0]
    # overlap 1, union 7, enclosing 9 -> 1/7 - 2/9 ; identical -> 1 ; disjoint: 0 - (25 - 5)/25
    np.testing.assert_allclose(g, [1 / 7 - 2 / 9, 1.0, -20 / 25], rtol=1e-6)


def test_loss_errors():
    import mindspore as ms

    logits, boxes, targets = _inputs(0)
    with pytest.raises(ConfigError, match="num_labels"):
        detr_loss(ms.Tensor(logits), ms.Tensor(boxes), targets, DetrLossWeights(7))
    bad = [dict(t) for t in targets]
    bad[0] = {"class_labels": np.array([9]), "boxes": np.array([[0.5, 0.5, 0.1, 0.1]], np.float32)}
    with pytest.raises(ConfigError, match="category id"):
        detr_loss(ms.Tensor(logits), ms.Tensor(boxes), bad, DetrLossWeights(4))
    with pytest.raises(ConfigError, match="one target dict per image"):
        hungarian_match(logits, boxes, targets[:1], DetrLossWeights(4))
