"""The tracker seam without training: what is logged is read back with TensorBoard's and MLflow's own
readers; a missing tracker or an unreachable server is one line at start-up, or a warning with ``warn``."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from oms_testing import free_port, from_test_extra
from openmindspore.errors import ConfigError
from openmindspore.track import Trackers, config_sha256, flatten, provenance, read_jsonl

from_test_extra("tensorboard")
from_test_extra("mlflow", "mlflow-skinny")


def _scalars(logdir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc, [(e.step, e.value) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def test_metrics_events_params_read_back_with_each_trackers_own_reader(tmp_path):
    from mlflow.tracking import MlflowClient

    t = Trackers.open(["tensorboard", "mlflow"], tmp_path, run_name="unit")
    t.log_params({"optimizer.lr": 0.01, "model.name": "mlp"}, {"config_sha256": "abc", "git.commit": "deadbeef"})
    losses = {1: 2.5, 2: 1.25, 3: 0.625}
    for step, loss in losses.items():
        t.log_metrics(step, {"loss": loss, "lr": 0.01})
    t.log_metrics(3, {"val.accuracy": 0.75})
    t.log_event(2, "recovery", {"kind": "crash", "recover_s": 1.5, "phases_s": {"form_group": 0.5}})
    t.close("completed")
    where = t.describe()
    assert set(where) == {"jsonl", "tensorboard", "mlflow"}

    acc, loss = _scalars(tmp_path / "tensorboard", "loss")
    assert loss == [(s, pytest.approx(v)) for s, v in losses.items()]
    assert _scalars(tmp_path / "tensorboard", "val.accuracy")[1] == [(3, 0.75)]
    assert [e.step for e in acc.Tensors("event/recovery")] == [2]
    assert json.loads(acc.Tensors("event/recovery")[0].tensor_proto.string_val[0])["kind"] == "crash"
    assert _scalars(tmp_path / "tensorboard", "event/recovery/phases_s.form_group")[1] == [(2, 0.5)]

    client = MlflowClient(where["mlflow"]["tracking_uri"])
    run_id = where["mlflow"]["run_id"]
    hist = client.get_metric_history(run_id, "loss")
    assert sorted((m.step, m.value) for m in hist) == list(losses.items())
    run = client.get_run(run_id)
    assert run.data.params["optimizer.lr"] == "0.01" and run.data.tags["oms.git.commit"] == "deadbeef"
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.runName"] == "unit"
    (tag,) = [k for k in run.data.tags if k.startswith("event.")]
    assert tag == "event.0.recovery" and json.loads(run.data.tags[tag])["step"] == 2
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "event.recovery.recover_s")] == [(2, 1.5)]

    assert read_jsonl(tmp_path / "events.jsonl")[0]["step"] == 2
    assert read_jsonl(tmp_path / "eval.jsonl") == [
        {"step": 3, "time": pytest.approx(time.time(), abs=600), "val.accuracy": 0.75}
    ]


def test_unreachable_tracking_uri_is_one_line_at_start_up_or_a_warning(tmp_path, caplog):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ConfigError) as e:
        Trackers.open(["mlflow"], tmp_path / "a", tracking_uri=uri)
    msg = str(e.value)
    assert "\n" not in msg and uri in msg and "unreachable" in msg and "logger_errors: warn" in msg
    assert not (tmp_path / "a").exists()  # nothing written

    t = Trackers.open(["mlflow"], tmp_path / "b", on_error="warn", tracking_uri=uri)
    t.log_metrics(1, {"loss": 1.0})
    t.log_event(1, "rescale", {"world_before": 1})
    t.close("completed")
    assert set(t.describe()) == {"jsonl", "mlflow"} and "unreachable" in t.describe()["mlflow"]["error"]
    assert any("logger mlflow is off" in r.getMessage() for r in caplog.records)
    assert read_jsonl(tmp_path / "b" / "events.jsonl")[0]["kind"] == "rescale"  # the rest goes on


@pytest.mark.parametrize("name,module", [("tensorboard", "tensorboard"), ("mlflow", "mlflow")])
def test_a_tracker_that_is_not_installed_names_the_extra(tmp_path, monkeypatch, name, module):
    for mod in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, module, None)  # what `import` sees when the package is absent
    with pytest.raises(ConfigError) as e:
        Trackers.open([name], tmp_path)
    assert f"openmindspore[{name}]" in str(e.value) and "not installed" in str(e.value)
    t = Trackers.open([name], tmp_path, on_error="warn")
    t.close("completed")
    assert "not installed" in t.describe()[name]["error"]


def test_a_tracker_failing_mid_run_is_turned_off_and_the_others_go_on(tmp_path):
    class Broken:
        name = "broken"

        def log_metrics(self, *a):
            raise OSError("disk full")

        def close(self, status):
            pass

        def describe(self):
            return {}

    from openmindspore.track.jsonl import JsonlLogger

    t = Trackers([Broken(), JsonlLogger(tmp_path)])
    t.log_metrics(1, {"val.loss": 1.0})
    t.log_metrics(2, {"val.loss": 0.5})
    t.close("completed")
    assert "disk full" in t.describe()["broken"]["error"]
    assert [r["step"] for r in read_jsonl(tmp_path / "eval.jsonl")] == [1, 2]


def test_provenance_names_versions_commit_command_config_and_machine(tmp_path):
    cfg = {"b": 1, "a": {"x": [1, 2]}}
    p = provenance(cfg, argv=["oms", "train", "my config.yaml"])
    assert p["config_sha256"] == config_sha256({"a": {"x": [1, 2]}, "b": 1}) != config_sha256({"b": 2})
    assert p["command"] == "oms train 'my config.yaml'"
    assert p["versions"]["mindspore"] and p["versions"]["ray"] and p["versions"]["openmindspore"]
    assert p["machine"]["cpu_count"] == os.cpu_count() and p["machine"]["device"]
    assert p["git"] is None or len(p["git"]["commit"]) == 40  # a checkout has one; an installed wheel may not
    assert flatten({"machine": {"cpu_count": 2}, "git": None}) == {"machine.cpu_count": 2, "git": None}
