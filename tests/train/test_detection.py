"""The detection task on the one trainer: its step is the DETR loss, exact at any world size, compiled ==
op by op; flips keyed by sample; COCO mAP of the outputs; the dataset formats; bad input in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from detection_testing import tiny_config, write_coco

from openmindspore.errors import ConfigError


@pytest.fixture(scope="module", autouse=True)
def _ms():
    from openmindspore.train.trainer import setup_mindspore

    setup_mindspore()


def _trainer(**changes):
    from openmindspore.train import Trainer, config_from_dict

    return Trainer(config_from_dict(tiny_config(**changes)))


def test_the_step_is_the_detr_loss_and_sums_exactly_over_workers():
    """At world size 1 the step's loss is the reference ``detr_loss`` of the batch; the shards of 2 workers
    add up to the same loss and gradients (the normalisers are the global batch's)."""
    import mindspore as ms

    from openmindspore.data.detection import unpack_targets
    from openmindspore.models.yolos.loss import DetrLossWeights, detr_loss

    tr = _trainer(hflip=False)
    assert tr.compiled and tr.task == "detection"
    idx = tr.next_indices()
    loss, grads = tr.compute_grads(idx)
    logits, boxes = tr.model(ms.Tensor(tr.data.x_train[idx]))[:2]
    ref = detr_loss(logits, boxes, unpack_targets(tr.data.y_train[idx]), DetrLossWeights.from_config(tr.model.config))
    assert loss == pytest.approx(float(ref[0].asnumpy()), rel=1e-5)
    parts = [tr.compute_grads(idx, 2, r) for r in range(2)]
    assert parts[0][0] != pytest.approx(parts[1][0])  # two different shards ...
    assert sum(p[0] for p in parts) == pytest.approx(loss, rel=1e-5)  # ... adding up to the whole batch
    for i, g in enumerate(grads):
        total = sum(p[1][i].asnumpy() for p in parts)
        np.testing.assert_allclose(total, g.asnumpy(), atol=1e-5 * max(1.0, float(np.abs(g.asnumpy()).max())))


def test_the_one_forward_step_equals_match_then_value_and_grad_bitwise():
    """The compiled step runs the forward once (matching on its outputs, then its vjp: train.matched); it gives
    bit for bit the loss and gradients of the former two passes (a forward to match, then value_and_grad)."""
    tr = _trainer(hflip=False)
    assert tr._matched is not None
    idx = tr.next_indices()
    loss, grads = tr.compute_grads(idx)
    batch = tr.task_impl.match(tr.model, tr.task_impl.collate(tr.data.x_train[idx], tr.data.y_train[idx]))
    (x,), (y, *more) = batch.inputs, batch.targets
    ref_loss, ref_grads = tr._grad_fn(x, y, tr._scale(idx), (), *more)
    assert loss == float(ref_loss.asnumpy())
    assert len(grads) == len(ref_grads) == len(tr.optimizer.params)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_array_equal(g.asnumpy(), r.asnumpy())


def test_compiled_step_follows_the_op_by_op_trajectory():
    runs = {}
    for compiled in (True, False):
        tr = _trainer(compile=compiled)
        assert tr.compiled is compiled
        losses = [tr.train_step() for _ in range(2)]
        runs[compiled] = losses, tr.params_numpy()
    (lc, pc), (le, pe) = runs[True], runs[False]
    np.testing.assert_allclose(lc, le, rtol=1e-4)
    assert max(float(np.abs(pc[k] - pe[k]).max()) for k in pe) < 1e-4
    p0 = _trainer().params_numpy()
    assert max(float(np.abs(p0[k] - pc[k]).max()) for k in p0) > 1e-4  # the steps did move the weights


def test_flips_mirror_images_and_boxes_keyed_by_seed_step_and_sample():
    from openmindspore.models import set_noise_key
    from openmindspore.train.tasks.detection import hflip

    x = np.arange(2 * 3 * 2 * 4, dtype=np.float32).reshape(2, 3, 2, 4)
    t = [{"class_labels": np.array([1]), "boxes": np.array([[0.2, 0.5, 0.1, 0.3]], np.float32)} for _ in range(2)]
    y, u = hflip(x, t, np.array([True, False]))
    assert np.array_equal(y[0], x[0, ..., ::-1]) and np.array_equal(y[1], x[1])
    assert np.allclose(u[0]["boxes"][0], [0.8, 0.5, 0.1, 0.3]) and np.allclose(u[1]["boxes"][0], [0.2, 0.5, 0.1, 0.3])
    assert np.allclose(t[0]["boxes"][0, 0], 0.2)  # inputs untouched

    tr = _trainer()
    xs, ys = tr.data.x_train[:8], tr.data.y_train[:8]

    def flipped(step, ids, rows):
        set_noise_key(0, step, np.asarray(ids))
        b = tr.task_impl.collate(xs[rows], ys[rows])
        return [not np.array_equal(a, xs[r]) for a, r in zip(b.inputs[0].asnumpy(), rows)]

    whole = flipped(5, range(8), list(range(8)))
    assert 0 < sum(whole) < 8  # some flipped, some not
    assert flipped(5, [6, 2], [6, 2]) == [whole[6], whole[2]]  # a sample's flip does not depend on its batch
    assert flipped(6, range(8), list(range(8))) != whole  # ... but on the step


def test_metrics_are_coco_map_of_the_outputs():
    from openmindspore.train.tasks import Detection

    tr = _trainer(hflip=False)
    y = tr.data.y_val
    q, c = 4, tr.data.num_classes
    logits = np.full((len(y), q, c + 1), -10.0, np.float32)
    boxes = np.full((len(y), q, 4), 0.5, np.float32)
    for i, row in enumerate(y):
        for k, (lab, box) in enumerate(zip(row["labels"], row["boxes"])):
            if lab >= 0:
                logits[i, k, lab], boxes[i, k] = 10.0, box
    perfect = Detection().metrics(np.concatenate([logits, boxes], -1), y)
    assert perfect["map50"] == pytest.approx(1.0) and perfect["map"] == pytest.approx(1.0)
    shifted = boxes.copy()
    shifted[..., 0] += 0.6 * shifted[..., 2]
    assert Detection().metrics(np.concatenate([logits, shifted], -1), y)["map50"] < 0.5
    pred = Detection().predictions(np.concatenate([logits, boxes], -1))
    assert pred["boxes"].shape == (len(y), q, 4) and pred["labels"][0, 0] == y["labels"][0, 0]


def test_synthetic_and_coco_datasets(tmp_path):
    from openmindspore.data import load_dataset, parse_dataset

    ds = _trainer().data
    assert ds.task == "detection" and ds.input_shape == (3, 32, 48) and ds.num_classes == 4
    assert len(ds.y_train) == 16 and len(ds.y_val) == len(ds.y_test) == 6
    assert np.allclose(ds.y_train["frame"], [32, 48]) and ds.preprocessor is not None
    assert ds.preprocessor.class_names == ["N/A", "square", "circle", "triangle"]

    ann = write_coco(tmp_path / "imgs", n=10)
    spec = parse_dataset({"format": "coco", "path": "imgs/annotations.json"}, base_dir=tmp_path)
    assert spec["path"] == str(ann) and spec["image_dir"] is None
    coco = load_dataset(spec)
    assert (len(coco.y_train), len(coco.y_val), len(coco.y_test)) == (8, 1, 1)
    raw = json.loads(ann.read_text())
    n_boxes = sum(int((coco.split(s)[1]["labels"] >= 0).sum()) for s in ("train", "val", "test"))
    assert n_boxes == len(raw["annotations"])


def test_coco_images_of_mixed_sizes_share_one_frame_and_keep_their_boxes(tmp_path):
    """Resized keeping the aspect ratio and padded to one frame; the boxes rebuilt in each image's original
    pixels (what mAP is computed in) are the annotation's."""
    from openmindspore.data import load_dataset, parse_dataset
    from openmindspore.models.yolos.coco_eval import dense_to_coco
    from openmindspore.models.yolos.synthetic import make_synthetic_detection, write_dataset

    a_imgs, a = make_synthetic_detection(3, (32, 48), max_objects=2, seed=1)
    b_imgs, b = make_synthetic_detection(3, (48, 40), max_objects=2, seed=2, first_image_id=4)
    for ann in b["annotations"]:
        ann["id"] += 100
    coco = {"images": a["images"] + b["images"], "annotations": a["annotations"] + b["annotations"]}
    path = write_dataset(tmp_path, a_imgs + b_imgs, {**coco, "categories": a["categories"]})
    ds = load_dataset(parse_dataset({"format": "coco", "path": str(path), "val_fraction": 0.0, "test_fraction": 0.0}))
    assert ds.x_train.shape == (6, 3, 32, 48)  # 48x40 -> 32x32 (short side 32, floored to 16), padded to 32x48
    np.testing.assert_allclose(ds.y_train["frame"], [[32, 48]] * 3 + [[48, 60]] * 3)
    got = sorted((g["image_id"], tuple(np.round(g["bbox"], 3))) for g in dense_to_coco(ds.y_train)["annotations"])
    want = sorted((g["image_id"], tuple(float(v) for v in g["bbox"])) for g in coco["annotations"])
    assert got == want


def _coco_without_boxes(folder):
    ann = write_coco(folder, n=4)
    raw = json.loads(ann.read_text())
    raw["annotations"] = []
    ann.write_text(json.dumps(raw))
    return ann


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"model": {"name": "mlp"}}, "a detector returning (logits [batch, queries, 5], boxes [batch, queries, 4])"),
        ({"model": {**tiny_config()["model"], "num_labels": 2}}, "its logits have 3 classes per query"),
        ({"task": "detection", "data": {"kind": "synthetic"}, "train": {"steps": 3}}, "the old detection loop"),
        ("no boxes", "a detection dataset with boxes"),
    ],
)
def test_bad_detection_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, change, fragment):
    from detection_testing import write_config

    from openmindspore.cli.main import main

    if change == "no boxes":
        ann = _coco_without_boxes(tmp_path / "imgs")
        cfg = tiny_config(dataset={"format": "coco", "path": str(ann)})
    elif "task" in change:
        cfg = dict(change, model={"name": "yolos"})
    else:
        cfg = tiny_config(**change)
    path = write_config(tmp_path / "cfg.yaml", cfg)
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err
    assert not out.exists()


def test_missing_detection_fields_are_named():
    from openmindspore.train import config_from_dict

    with pytest.raises(ConfigError, match="dataset.path"):
        config_from_dict({"dataset": {"format": "coco"}})
    with pytest.raises(ConfigError, match="dataset.train_imagez"):
        config_from_dict({"dataset": {"format": "synthetic_detection", "train_imagez": 3}})
