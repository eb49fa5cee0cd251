"""``oms search --logger mlflow``: the search is an MLflow run and every trial a nested run under it, with the
trial's spec and propensities as params, read back with MLflow's client."""

from __future__ import annotations

import json
import math

from oms_testing import from_test_extra
from openmindspore.track import read_jsonl

from_test_extra("mlflow", "mlflow-skinny")


def test_search_trials_are_nested_mlflow_runs_with_spec_and_propensities(tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from openmindspore.cli.main import main

    out = tmp_path / "search"
    args = ["search", "--space", "sklearn-classifier", "--dataset", "iris", "--budget", "2", "--out", str(out)]
    assert main([*args, "--logger", "mlflow", "--json", "--quiet"]) == 0
    tracking = json.loads(capsys.readouterr().out)["tracking"]
    client = MlflowClient(tracking["tracking_uri"])
    parent = client.get_run(tracking["run_id"])
    assert parent.info.status == "FINISHED" and parent.data.params["space"] == "sklearn-classifier"
    children = client.search_runs(
        [tracking["experiment_id"]],
        f"tags.mlflow.parentRunId = '{tracking['run_id']}'",
        order_by=["tag.mlflow.runName"],
    )
    trials = read_jsonl(out / "trials.jsonl")
    assert [c.data.tags["mlflow.runName"] for c in children] == ["trial-0", "trial-1"]
    for child, trial in zip(children, trials, strict=True):
        assert json.loads(child.data.params["spec"]) == trial["spec"]
        assert math.isclose(float(child.data.params["log_propensity"]), trial["log_propensity"], rel_tol=1e-9)
        ps = {k: float(v) for k, v in child.data.params.items() if k.startswith("p.")}
        assert len(ps) == len(trial["steps"]) and math.isclose(sum(map(math.log, ps.values())), trial["log_propensity"])
        assert child.data.metrics["score"] == trial["score"]
