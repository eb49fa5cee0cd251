"""Hugging Face -> MindSpore conversion: round trips (safetensors, torch .bin, legacy key names, bf16),
strictness (missing / unexpected / shape mismatches are listed), and the ``oms convert-hf`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oms_testing import from_test_extra
from openmindspore.errors import ConfigError
from openmindspore.models import create_model
from openmindspore.models._checkpoint_io import load_checkpoint, read_tensors
from openmindspore.models.hf_convert import convert_state_dict, load_hf_state_dict
from vision_testing import TOL, max_abs, randomize, state_dict_numpy

torch = from_test_extra("torch")
transformers = from_test_extra("transformers")

YCFG = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    image_size=[48, 64],
    patch_size=16,
    num_detection_tokens=4,
    num_labels=3,
    use_mid_position_embeddings=True,
)
VCFG = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    image_size=32,
    patch_size=8,
    num_labels=3,
)


@pytest.fixture(scope="module", autouse=True)
def _ms():
    import mindspore as ms

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")


@pytest.fixture(scope="module")
def yolos_ref():
    ref = transformers.YolosForObjectDetection(transformers.YolosConfig(**YCFG)).eval()
    randomize(ref, seed=7)
    return ref


def _legacy_yolos(sd):
    return {
        k.replace("encoder.interpolation.mid_position_embeddings", "encoder.mid_position_embeddings"): v
        for k, v in sd.items()
    }


def _legacy_vit(sd):
    out = {}
    for k, v in sd.items():
        k = k.replace("vit.layers.", "vit.encoder.layer.")
        for a, b in (
            (".attention.q_proj.", ".attention.attention.query."),
            (".attention.k_proj.", ".attention.attention.key."),
            (".attention.v_proj.", ".attention.attention.value."),
            (".attention.o_proj.", ".attention.output.dense."),
            (".mlp.fc1.", ".intermediate.dense."),
            (".mlp.fc2.", ".output.dense."),
        ):
            k = k.replace(a, b)
        out[k] = v
    return out


@pytest.mark.parity
def test_cli_convert_safetensors_with_config_roundtrip(tmp_path, yolos_ref, capsys):
    from safetensors.torch import save_file

    from openmindspore.cli.main import main

    src = tmp_path / "hf"
    src.mkdir()
    save_file({k: v.contiguous() for k, v in yolos_ref.state_dict().items()}, str(src / "model.safetensors"))
    yolos_ref.config.to_json_file(str(src / "config.json"))
    out = tmp_path / "y.ckpt"
    rc = main(["convert-hf", str(src / "model.safetensors"), "--model", "yolos-tiny", "--out", str(out), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parameters"] == len(yolos_ref.state_dict())
    ours = create_model("yolos", **YCFG)
    load_checkpoint(ours, out)
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 80)).astype(np.float32)
    with torch.no_grad():
        r = yolos_ref(torch.from_numpy(x))
    o = ours.predict(x)
    assert max_abs(o.logits, r.logits.numpy()) < TOL and max_abs(o.pred_boxes, r.pred_boxes.numpy()) < TOL
    # the sidecar config lets `oms detect` rebuild the same architecture
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["config"]["hidden_size"] == 32 and meta["config"]["use_mid_position_embeddings"] is True


@pytest.mark.parity
def test_torch_bin_with_legacy_names_roundtrip(tmp_path, yolos_ref):
    path = tmp_path / "pytorch_model.bin"
    torch.save(_legacy_yolos(yolos_ref.state_dict()), path)
    sd = read_tensors(path)
    assert "vit.encoder.mid_position_embeddings" in sd
    ours = create_model("yolos", **YCFG)
    load_hf_state_dict(ours, sd)
    for p in ours.get_parameters():
        ref_name = p.name
        np.testing.assert_array_equal(p.asnumpy(), yolos_ref.state_dict()[ref_name].numpy())


@pytest.mark.parity
def test_vit_legacy_checkpoint_names_convert():
    ref = transformers.ViTForImageClassification(transformers.ViTConfig(**VCFG)).eval()
    randomize(ref, seed=2)
    ours = create_model("vit", **VCFG)
    load_hf_state_dict(ours, _legacy_vit(state_dict_numpy(ref)))
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        r = ref(torch.from_numpy(x)).logits.numpy()
    assert max_abs(ours.predict(x).logits, r) < TOL


def test_bf16_safetensors_are_widened_exactly(tmp_path):
    from safetensors.torch import save_file

    t = torch.randn(5, 7).to(torch.bfloat16)
    save_file({"a": t, "b": torch.arange(6, dtype=torch.int64)}, str(tmp_path / "w.safetensors"))
    sd = read_tensors(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(sd["a"], t.float().numpy())
    np.testing.assert_array_equal(sd["b"], np.arange(6))


def test_strict_conversion_lists_every_problem(yolos_ref):
    ours = create_model("yolos", **YCFG)
    sd = state_dict_numpy(yolos_ref)
    sd.pop("vit.layernorm.bias")
    sd["vit.pooler.dense.weight"] = np.zeros((32, 32), np.float32)
    sd["class_labels_classifier.layers.2.weight"] = np.zeros((10, 32), np.float32)
    with pytest.raises(ConfigError) as e:
        convert_state_dict(ours, sd)
    msg = str(e.value)
    assert "1 missing: vit.layernorm.bias" in msg
    assert "1 unexpected: vit.pooler.dense.weight" in msg
    assert "class_labels_classifier.layers.2.weight: (10, 32) vs (4, 32)" in msg
    assert "\n" not in msg


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.bin"
    torch.save({"w": torch.zeros(2), "x": {1, 2}}, path)  # a set is not a tensor
    with pytest.raises(ConfigError, match="refusing"):
        read_tensors(path)


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, yolos_ref):
    from safetensors.torch import save_file

    from openmindspore.cli.main import main

    assert (
        main(
            [
                "convert-hf",
                str(tmp_path / "nope.safetensors"),
                "--model",
                "yolos-tiny",
                "--out",
                str(tmp_path / "o.ckpt"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("oms convert-hf: error:") and "\n" not in err
    # architecture mismatch (preset yolos-tiny vs a tiny random checkpoint, no config.json): keys are listed
    save_file({k: v.contiguous() for k, v in yolos_ref.state_dict().items()}, str(tmp_path / "m.safetensors"))
    assert (
        main(
            ["convert-hf", str(tmp_path / "m.safetensors"), "--model", "yolos-tiny", "--out", str(tmp_path / "o.ckpt")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "shape mismatches" in err and "vit.embeddings.cls_token" in err
    assert not (tmp_path / "o.ckpt").exists()
