"""``oms export RUN --format mindir`` and serving the exported MindIR file (no run directory, no model code)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oms_testing import run_oms
from openmindspore.errors import ConfigError


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from openmindspore.train import config_from_dict, train

    base = tmp_path_factory.mktemp("export")
    run = base / "digits"
    train(config_from_dict({"dataset": "digits", "model": {"name": "cnn"}, "steps": 3, "batch_size": 32}), out_dir=run)
    p = run_oms("export", str(run), "--format", "mindir", "--json", timeout=600)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    return run, base / "digits" / "export" / "digits.mindir", info


def test_exported_mindir_serves_the_runs_predictions(exported, tmp_path):
    from openmindspore.data import load_dataset
    from openmindspore.serve.registry import load_predictor, resolve_source

    run, path, info = exported
    assert info["path"] == str(path) and path.is_file() and path.with_suffix(".json").is_file()
    assert (
        info["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 8, 8]}] and info["checkpoint_step"] == 3
    )
    moved = tmp_path / "model.mindir"  # the file and its .json are all it needs
    moved.write_bytes(path.read_bytes())
    moved.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    assert resolve_source(str(moved)).kind == "mindir"
    served = load_predictor(str(moved))
    x = load_dataset("digits").x_test[:9].astype(np.float32)
    got, want = served.predict({"x": x}), load_predictor(str(run)).predict({"x": x})
    np.testing.assert_allclose(got["logits"], want["logits"], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got["label"], want["label"])
    assert served.metadata()["outputs"] == load_predictor(str(run)).metadata()["outputs"]
    assert served.predict({"x": x[:1]})["logits"].shape == (1, 10)  # dynamic batch dimension


def test_bad_exports_and_a_corrupted_mindir_fail_before_anything_runs(exported, tmp_path, yolos_run):
    from openmindspore.serve.mindir import export_mindir
    from openmindspore.serve.registry import resolve_source

    _, path, _ = exported
    bad = tmp_path / "bad.mindir"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    bad.write_bytes(bytes(blob))
    bad.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(ConfigError, match="SHA-256"):
        resolve_source(str(bad))
    bad.with_suffix(".json").unlink()
    with pytest.raises(ConfigError, match=r"bad\.json"):
        resolve_source(str(bad))
    with pytest.raises(ConfigError, match="'detector' models do not export"):
        export_mindir(yolos_run, tmp_path / "det.mindir")
    p = run_oms("export", str(tmp_path / "missing"), timeout=120)
    assert p.returncode == 2 and "oms export: error:" in p.stderr and "missing" in p.stderr
