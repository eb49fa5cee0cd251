"""Synthetic data, COCO evaluation, and ``oms detect`` / ``oms eval-detection`` / serving on a detection run of
the one trainer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from detection_testing import IMAGE, TINY_YOLOS, tiny_config

from openmindspore.errors import ConfigError
from openmindspore.models.yolos.coco_eval import evaluate_coco
from openmindspore.models.yolos.synthetic import make_synthetic_detection, write_dataset


@pytest.fixture(scope="module", autouse=True)
def _ms():
    import mindspore as ms

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 3-step detection run of the one trainer (tiny YOLOS, tiny synthetic set)."""
    from openmindspore.train import config_from_dict, train

    out = tmp_path_factory.mktemp("det_run") / "run"
    summary = train(config_from_dict(tiny_config(steps=3)), out)
    return out, summary


def test_synthetic_annotations_are_exact_and_deterministic():
    imgs, coco = make_synthetic_detection(6, (64, 80), max_objects=3, seed=5)
    imgs2, coco2 = make_synthetic_detection(6, (64, 80), max_objects=3, seed=5)
    assert coco == coco2 and all((a == b).all() for a, b in zip(imgs, imgs2))
    assert {c["name"] for c in coco["categories"]} == {"square", "circle", "triangle"}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 80 and y + h <= 64 and a["area"] <= w * h
    # ground truth scored against itself is perfect; shifted boxes score lower (the metric is not constant)
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in coco["annotations"]
    ]
    assert evaluate_coco(coco, perfect)["map50"] == pytest.approx(1.0)
    shifted = [dict(d, bbox=[d["bbox"][0] + d["bbox"][2] * 0.6] + d["bbox"][1:]) for d in perfect]
    assert evaluate_coco(coco, shifted)["map50"] < 0.2
    with pytest.raises(ConfigError, match="image_id"):
        evaluate_coco(coco, [dict(perfect[0], image_id=999)])


def test_detection_run_directory(run_dir):
    out, summary = run_dir
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["status"] == "completed" and on_disk["steps"] == 3 and np.isfinite(on_disk["final_loss"])
    assert set(on_disk["eval"]) >= {"map50", "map"} and 0.0 <= on_disk["val"]["map50"] <= 1.0
    assert (out / "checkpoints" / "LATEST").read_text() == "step_00000003"
    assert json.loads((out / "preprocess.json").read_text())["task"] == "detection"


def test_detect_cli_json_and_png(run_dir, tmp_path, capsys):
    from mindspore import Tensor
    from PIL import Image

    from openmindspore.cli.main import main
    from openmindspore.models.yolos.processor import YolosImageProcessor
    from openmindspore.train.run import load_run

    out, _ = run_dir
    imgs, coco = make_synthetic_detection(2, IMAGE, seed=9)
    write_dataset(tmp_path / "imgs", imgs, coco)
    paths = [str(tmp_path / "imgs" / im["file_name"]) for im in coco["images"]]
    rc = main(
        ["detect", *paths, "--weights", str(out), "--threshold", "0.0", "--json", "--out-dir", str(tmp_path / "v")]
    )
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and all(len(r["detections"]) == TINY_YOLOS["num_detection_tokens"] for r in rows)
    assert Image.open(rows[0]["annotated"]).size == (48, 32)
    assert {d["name"] for r in rows for d in r["detections"]} <= {"square", "circle", "triangle", "0"}
    # independent computation: the trainer's own model (restored from the run) + processor + softmax by hand
    _, trainer, _ = load_run(out)
    enc = YolosImageProcessor(shortest_edge=32, longest_edge=48)([imgs[0]])
    trainer.model.set_train(False)
    logits = trainer.model(Tensor(enc["pixel_values"]))[0].asnumpy()[0]
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    got = sorted(d["score"] for d in rows[0]["detections"])
    np.testing.assert_allclose(got, np.sort(p[:, :-1].max(-1)), atol=1e-4)


def test_eval_detection_cli_equals_the_runs_own_metrics(run_dir, tmp_path, capsys):
    from openmindspore.cli.main import main

    out, summary = run_dir
    imgs, coco = make_synthetic_detection(3, IMAGE, seed=11)
    ann = write_dataset(tmp_path, imgs, coco)
    dets = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for a in coco["annotations"]
    ]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    assert (
        main(["eval-detection", "--annotations", str(ann), "--detections", str(tmp_path / "dets.json"), "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["map50"] == pytest.approx(1.0)
    # the run's validation images (generated with seed + 10000, ids after the 16 training images)
    val_imgs, val_coco = make_synthetic_detection(6, IMAGE, max_objects=2, seed=10_000, first_image_id=17)
    val_ann = write_dataset(tmp_path / "val", val_imgs, val_coco)
    assert main(["eval-detection", "--annotations", str(val_ann), "--weights", str(out), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["map50"] == pytest.approx(summary["val"]["map50"], abs=1e-6)
    assert m["map"] == pytest.approx(summary["val"]["map"], abs=1e-6)


def test_the_run_is_served_by_the_detector_kind(run_dir):
    from openmindspore.cli.main import main  # noqa: F401  (the CLI's imports register every predictor kind)
    from openmindspore.serve import load_predictor, resolve_source

    out, _ = run_dir
    rs = resolve_source(str(out))
    assert rs.kind == "detector" and rs.checkpoint == out / "checkpoints" / "step_00000003.safetensors"
    imgs, _ = make_synthetic_detection(2, IMAGE, seed=9)
    pred = load_predictor(f"{out}?threshold=0.0")
    assert pred.inputs[0].shape == (*IMAGE, 3)
    got = pred.predict({"image": np.stack(imgs)})
    assert got["boxes"].shape == (2, 4, 4) and (got["count"] == 4).all()
    assert pred.metadata()["id2label"] == {"1": "square", "2": "circle", "3": "triangle"}


def test_detect_cli_errors(tmp_path, capsys, run_dir):
    from openmindspore.cli.main import main

    out, _ = run_dir
    assert main(["detect", str(tmp_path / "missing.png"), "--weights", str(out)]) == 2
    assert "image" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "x.png"), "--weights", str(tmp_path / "none.ckpt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("oms detect: error:") and "convert-hf" in err
