"""docs/observability.md's examples run as written: its config validates, its Python example trains and
reads the run back with TensorBoard's and MLflow's readers."""

from __future__ import annotations

import re

import yaml

from oms_testing import ROOT, from_test_extra

DOC = (ROOT / "docs" / "observability.md").read_text()

from_test_extra("tensorboard")
from_test_extra("mlflow", "mlflow-skinny")


def test_config_example_validates():
    from openmindspore.train import config_from_dict

    (block,) = re.findall(r"```yaml\n(.*?)```", DOC, re.S)
    cfg = config_from_dict(yaml.safe_load(block))
    assert cfg.logger == ["tensorboard", "mlflow"] and cfg.checkpoint.monitor == "val.accuracy"
    assert cfg.early_stopping is not None and cfg.eval_every == 20


def test_python_example_runs(tmp_path, monkeypatch, capsys, ms_cpu):
    (code,) = re.findall(r"```python\n(.*?)```", DOC, re.S)
    monkeypatch.chdir(tmp_path)  # in this process (MindSpore already imported): as written, in a fresh folder
    exec(compile(code, "docs/observability.md", "exec"), {"__name__": "__doc_example__"})
    sha, step = capsys.readouterr().out.split()[-2:]
    assert len(sha) == 64 and int(step) in (4, 8)


def test_bad_monitor_and_logger_are_config_errors_with_the_fix():
    import pytest

    from openmindspore.errors import OMSError
    from openmindspore.train import config_from_dict

    with pytest.raises(OMSError, match="eval_every"):
        config_from_dict({"checkpoint": {"monitor": "val.accuracy"}})
    with pytest.raises(OMSError, match="early_stopping needs checkpoint.monitor"):
        config_from_dict({"eval_every": 5, "early_stopping": {"patience": 2}})
    with pytest.raises(OMSError, match="val.accuracy or val.loss"):
        config_from_dict({"eval_every": 5, "checkpoint": {"monitor": "accuracy"}})
    with pytest.raises(OMSError, match="logger"):
        config_from_dict({"logger": ["tensorbord"]})
