"""ViT image classification from the CLI: ``oms train`` with a registered ViT preset on an image folder made
here (image size and channels from the data), op by op (PyNative), resumed exactly with keyed dropout."""

from __future__ import annotations

import json

import pytest
import yaml
from userdata_testing import write_image_folder

#: vit-tiny's architecture cut to one small layer (4x4 patches of 8x8 images)
TINY_VIT = {
    "name": "vit-tiny-patch16-224",
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "patch_size": 4,
    "hidden_dropout_prob": 0.1,
}


def _config(tmp_path, **dataset):
    write_image_folder(tmp_path / "photos", per_class=12, size=(10, 12))
    cfg = {
        "dataset": {"format": "imagefolder", "path": "photos", "image_size": [8, 8], **dataset},
        "model": TINY_VIT,
        "optimizer": {"name": "adamw", "lr": 0.003},
        "batch_size": 8,
        "steps": 8,
        "checkpoint_every": 4,
    }
    path = tmp_path / "vit.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train(capsys, *args):
    from openmindspore.cli.main import main

    assert main(["train", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_vit_trains_on_an_image_folder_from_the_cli_and_resumes_exactly(tmp_path, capsys):
    from openmindspore.train.run import load_run

    cfg = _config(tmp_path)
    straight = _train(capsys, str(cfg), "--out", str(tmp_path / "a"))
    assert straight["status"] == "completed" and straight["steps"] == 8 and straight["model"] == TINY_VIT["name"]
    assert 0.0 <= straight["eval"]["accuracy"] <= 1.0
    _, trainer, _ = load_run(tmp_path / "a")
    vit = trainer.model.config
    assert (vit.num_channels, vit.image_size, vit.num_labels, vit.num_hidden_layers) == (3, (8, 8), 3, 1)
    assert not trainer.compiled  # ViT runs op by op (its dropout masks are drawn on the host, keyed)
    first = _train(capsys, str(cfg), "--out", str(tmp_path / "b"), "--max-steps", "4")
    assert first["params_sha256"] != straight["params_sha256"]
    second = _train(capsys, "--resume", str(tmp_path / "b"))
    assert second["steps"] == 8 and second["params_sha256"] == straight["params_sha256"]


def test_grey_images_give_a_one_channel_vit(tmp_path, capsys):
    from openmindspore.train.run import load_run

    cfg = _config(tmp_path, channels=1)
    _train(capsys, str(cfg), "--out", str(tmp_path / "g"), "--max-steps", "1")
    assert load_run(tmp_path / "g")[1].model.config.num_channels == 1


def test_vit_on_a_table_is_one_line_exit_2(tmp_path, capsys):
    from openmindspore.cli.main import main

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"dataset": "iris", "model": {"name": "vit-tiny-patch16-224"}, "steps": 2}))
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "[channels, height, width]" in err and "(4,)" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["vit", "vit-small-patch16-224"])
def test_every_vit_name_takes_the_datas_sizes(name):
    from openmindspore.models import create_model

    small = {k: v for k, v in TINY_VIT.items() if k != "name"}
    m = create_model(name, input_shape=(1, 8, 12), num_classes=5, seed=2, **small)
    assert (m.config.num_channels, m.config.image_size, m.config.num_labels, m.config.seed) == (1, (8, 12), 5, 2)
