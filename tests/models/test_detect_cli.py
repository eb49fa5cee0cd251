"""Synthetic data, COCO evaluation, fine-tuning summary and the ``oms detect`` / ``oms eval-detection`` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest

from openmindspore.errors import ConfigError
from openmindspore.models.yolos.coco_eval import evaluate_coco
from openmindspore.models.yolos.synthetic import make_synthetic_detection, write_dataset

TINY = {
    "name": "yolos",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "patch_size": 8,
    "num_detection_tokens": 4,
    "use_mid_position_embeddings": False,
}


@pytest.fixture(scope="module", autouse=True)
def _ms():
    import mindspore as ms

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 3-step fine-tuning run (tiny model, tiny synthetic set)."""
    from openmindspore.models.yolos.finetune import finetune_detection

    out = tmp_path_factory.mktemp("det_run")
    cfg = {
        "task": "detection",
        "model": TINY,
        "data": {"kind": "synthetic", "train_images": 12, "val_images": 6, "image_size": [32, 48], "max_objects": 2},
        "train": {
            "steps": 3,
            "batch_size": 4,
            "lr": 1e-3,
            "warmup_steps": 1,
            "log_every": 1,
            "eval_every": 2,
            "hflip": True,
            "pos_init": "sincos",
        },
    }
    summary = finetune_detection(cfg, out)
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


def test_finetune_writes_summary(run_dir):
    out, summary = run_dir
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["status"] == "ok" and on_disk["steps"] == 3
    assert np.isfinite(on_disk["final_loss"])
    assert set(on_disk["eval"]) >= {"map50", "map"} and 0.0 <= on_disk["eval"]["map50"] <= 1.0
    assert (out / "model.ckpt").is_file() and (out / "model.json").is_file()
    assert [c["step"] for c in on_disk["curve"]] == [2] and on_disk["steps_per_s"] > 0


def test_finetune_config_errors(tmp_path):
    from openmindspore.models.yolos.finetune import finetune_detection

    with pytest.raises(ConfigError, match="train.stepz"):
        finetune_detection({"task": "detection", "train": {"stepz": 3}}, tmp_path)
    with pytest.raises(ConfigError, match="task"):
        finetune_detection({"task": "classification"}, tmp_path)
    with pytest.raises(ConfigError, match="data.kind"):
        finetune_detection({"task": "detection", "data": {"kind": "voc"}}, tmp_path)
    with pytest.raises(ConfigError, match="train.pos_init"):
        finetune_detection({"task": "detection", "train": {"pos_init": "learned"}}, tmp_path)
    with pytest.raises(ConfigError, match="train.threads"):
        finetune_detection({"task": "detection", "train": {"threads": 0}}, tmp_path)


def test_detect_cli_json_and_png(run_dir, tmp_path, capsys):
    from PIL import Image

    from openmindspore.cli.main import main
    from openmindspore.models.yolos.inference import load_detector
    from openmindspore.models.yolos.processor import YolosImageProcessor

    out, _ = run_dir
    imgs, coco = make_synthetic_detection(2, (32, 48), seed=9)
    write_dataset(tmp_path / "imgs", imgs, coco)
    paths = [str(tmp_path / "imgs" / im["file_name"]) for im in coco["images"]]
    rc = main(
        [
            "detect",
            *paths,
            "--model",
            "yolos",
            "--weights",
            str(out / "model.ckpt"),
            "--threshold",
            "0.0",
            "--json",
            "--out-dir",
            str(tmp_path / "vis"),
        ]
    )
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and all(len(r["detections"]) == TINY["num_detection_tokens"] for r in rows)
    assert Image.open(rows[0]["annotated"]).size == (48, 32)
    # independent computation: processor + model + post-processing by hand
    model, _, _ = load_detector("yolos", out / "model.ckpt")
    enc = YolosImageProcessor(shortest_edge=32, longest_edge=48)([imgs[0]])
    o = model.predict(enc["pixel_values"])
    p = np.exp(o.logits[0] - o.logits[0].max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    got = sorted(d["score"] for d in rows[0]["detections"])
    np.testing.assert_allclose(got, np.sort(p[:, :-1].max(-1)), atol=1e-4)


def test_eval_detection_cli(run_dir, tmp_path, capsys):
    from openmindspore.cli.main import main

    out, _ = run_dir
    imgs, coco = make_synthetic_detection(3, (32, 48), seed=11)
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
    assert (
        main(
            [
                "eval-detection",
                "--annotations",
                str(ann),
                "--model",
                "yolos",
                "--weights",
                str(out / "model.ckpt"),
                "--json",
            ]
        )
        == 0
    )
    m = json.loads(capsys.readouterr().out)
    assert 0.0 <= m["map"] <= m["map50"] <= 1.0


def test_detect_cli_errors(tmp_path, capsys, run_dir):
    from openmindspore.cli.main import main

    out, _ = run_dir
    assert main(["detect", str(tmp_path / "missing.png"), "--weights", str(out / "model.ckpt")]) == 2
    assert "image" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "x.png"), "--weights", str(tmp_path / "none.ckpt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("oms detect: error:") and "convert-hf" in err
