"""The predictor registry: kinds registered from outside ``predictor.py`` (in-process and as an installed
plugin), their typed ``?options`` with did-you-mean, and no import from the registry or the built-in
predictors to the detector."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

from oms_testing import ROOT
from openmindspore.errors import ConfigError
from openmindspore.serve.protocol import TensorSpec
from openmindspore.serve.registry import (
    Predictor,
    ResolvedSource,
    load_predictor,
    predictor_kinds,
    register_predictor,
    resolve_source,
)

SERVE = ROOT / "src" / "openmindspore" / "serve"


class ScaleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    factor: float = Field(default=1.0, gt=0)


class ScalePredictor(Predictor):
    """``y = factor * x``; its weights file holds the feature count."""

    kind = "test-scale"
    platform = "numpy"

    def __init__(self, dim: int, factor: float) -> None:
        self.inputs = [TensorSpec("x", "FP32", (dim,))]
        self.outputs = [TensorSpec("y", "FP32", (dim,))]
        self.factor = factor

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": inputs["x"] * np.float32(self.factor)}


def _scale_file(p: Path) -> Path | None:
    return p if p.is_file() and p.suffix == ".scale" else None


@register_predictor("test-scale", options=ScaleOptions, claims=_scale_file)
def _load_scale(rs: ResolvedSource) -> Predictor:
    assert rs.checkpoint is not None
    return ScalePredictor(int(rs.checkpoint.read_text()), rs.options_as(ScaleOptions).factor)


@register_predictor("test-scale-builtin", options=ScaleOptions, builtin=True)
def _load_scale_builtin(rs: ResolvedSource) -> Predictor:
    return ScalePredictor(2, rs.options_as(ScaleOptions).factor)


def test_a_kind_registered_outside_predictor_py_serves_claimed_files_and_builtins(tmp_path):
    weights = tmp_path / "w.scale"
    weights.write_text("3")
    rs = resolve_source(f"{weights}?factor=2.5")
    assert (rs.kind, rs.checkpoint, rs.run_dir, rs.options) == (
        "test-scale",
        weights,
        tmp_path,
        ScaleOptions(factor=2.5),
    )
    p = load_predictor(rs)
    assert p.metadata()["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    np.testing.assert_array_equal(p.predict({"x": np.ones((2, 3), np.float32)})["y"], np.full((2, 3), 2.5))
    assert (
        load_predictor("builtin:test-scale-builtin?factor=3").predict({"x": np.ones((1, 2), np.float32)})["y"][0, 0]
        == 3
    )
    assert {"identity", "trained", "detector", "test-scale"} <= set(predictor_kinds())
    with pytest.raises(ConfigError, match=r"factor='0' is invalid: expected greater than 0"):
        resolve_source(f"{weights}?factor=0")


@pytest.mark.parametrize(
    "source, words",
    [
        ("builtin:identity?dimm=3", r"dimm='3' .*did you mean dim\?"),
        ("builtin:identity?dim=0", r"dim='0' .*greater than or equal to 1"),
        ("builtin:identity?dim", r"\?key=value"),
        ("builtin:identiy", r"builtin:identity.*did you mean identity\?"),
    ],
)
def test_bad_builtin_sources_and_options(source, words):
    with pytest.raises(ConfigError, match=words):
        resolve_source(source)


def test_misspelled_detector_option_and_options_on_a_kind_without_any(yolos_run):
    with pytest.raises(ConfigError, match=r"treshold='0.3' .*did you mean threshold\?"):
        resolve_source(f"{yolos_run}?treshold=0.3")
    with pytest.raises(
        ConfigError, match=r"has 2 problems: threshold='2' .*less than 1; image_size='8x8' .*both sides in \[16, 4096\]"
    ):
        resolve_source(f"{yolos_run}?threshold=2&image_size=8x8")


def test_trained_run_takes_no_options(tmp_path):
    import hashlib

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("dataset: iris\nmodel: {name: mlp}\n")
    blob = b"checkpoint bytes"
    (run / "checkpoints" / "step_00000001.safetensors").write_bytes(blob)
    manifest = {"step": 1, "sha256": hashlib.sha256(blob).hexdigest()}
    (run / "checkpoints" / "step_00000001.json").write_text(json.dumps(manifest))
    (run / "checkpoints" / "LATEST").write_text("step_00000001")
    rs = resolve_source(run)
    assert rs.kind == "trained" and rs.details["signature"]["input_shape"] == [4] and rs.details["step"] == 1
    with pytest.raises(ConfigError, match=r"threshold='0.3' is invalid: expected a known field name"):
        resolve_source(f"{run}?threshold=0.3")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return mods | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def test_no_module_of_the_seam_imports_the_detector():
    """The registry and the built-in predictors know no other kind: nothing imports detector.py but the package."""
    for name in ("registry.py", "predictor.py", "server.py", "deployments.py", "routes.py"):
        assert "openmindspore.serve.detector" not in _imports(SERVE / name), name
    assert "openmindspore.serve.predictor" not in _imports(SERVE / "registry.py")
    assert "openmindspore.serve.predictor" not in _imports(SERVE / "detector.py")


PLUGIN = """
import numpy as np
from openmindspore.serve.protocol import TensorSpec
from openmindspore.serve.registry import Predictor, register_predictor


class Negate(Predictor):
    kind = "negate"
    platform = "numpy"
    inputs = [TensorSpec("x", "FP32", (2,))]
    outputs = [TensorSpec("y", "FP32", (2,))]

    def predict(self, inputs):
        return {"y": -inputs["x"]}


@register_predictor("negate", builtin=True)
def _load(rs):
    return Negate()
"""


def test_an_installed_plugin_registers_a_kind_through_its_entry_point(tmp_path):
    """A package that declares an ``openmindspore.predictors`` entry point is served with no change to this one."""
    (tmp_path / "oms_negate_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "oms_negate_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: oms-negate-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[openmindspore.predictors]\nnegate = oms_negate_plugin\n")
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from openmindspore.serve.registry import load_predictor
        assert "oms_negate_plugin" not in sys.modules
        p = load_predictor("builtin:negate")
        print(p.predict({"x": np.array([[1.0, -2.0]], np.float32)})["y"].tolist())
        """
    )
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT / 'src'}", "GLOG_v": "3", "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[[-1.0, 2.0]]"
