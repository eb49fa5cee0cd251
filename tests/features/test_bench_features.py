"""benchmarks/features.py's records of ``ours`` and benchmarks/features_readmit.py's paired tables: the selection
before each late step (the readmission, the redundancy check run again on the final set) is recorded beside the
final one, consistently; and the case that made the second check: breast_cancer/logreg seed 412, where the proxy
of ``worst_texture`` stayed beside its readmitted source before (a failure of the s29 decision run), is dropped by
it and named by its source."""

from __future__ import annotations

import importlib.util
import json
import sys

from oms_testing import ROOT
from openmindspore.features.estimators import single_threaded

sys.path.insert(0, str(ROOT / "benchmarks"))
spec = importlib.util.spec_from_file_location("bench_features", ROOT / "benchmarks" / "features.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
import features_readmit  # noqa: E402


def _consistent(r: dict) -> None:
    """The before-sets of one record: nested as the steps run, and equal to the final set where a step changed
    nothing."""
    kept, pre, before = set(r["kept"]), set(r["kept_before_recheck"]), set(r["kept_before_readmission"])
    dropped_again = {o["name"] for o in r["rechecked"] if o["made"]}
    assert pre == kept | dropped_again and not kept & dropped_again
    assert before == pre - set(r["readmitted"])
    if not dropped_again:
        assert r["score_before_recheck"] == r["score_selected"]
        assert r["success_before_recheck"] == r["success"]
    if pre == before:
        assert r["score_before_readmission"] == r["score_before_recheck"]


def test_records_carry_the_selection_before_each_late_step(tmp_path):
    with single_threaded():  # as the benchmark runs it (BLAS threads on 2 cores slow it several-fold)
        recs = bench.injection_seed("wine", "logreg", 440, ("ours",))
    assert len(recs) == 1
    _consistent(recs[0])
    path = tmp_path / "seeds.jsonl"
    path.write_text(json.dumps(recs[0]) + "\n")
    for step in ("readmission", "recheck"):
        (row,) = features_readmit.summarise([recs[0]], step)
        assert row["kept_after"] == len(recs[0]["kept"])
        assert row["kept_before"] == len(recs[0][f"kept_before_{step}"])
        assert features_readmit.main([str(path), "--step", step, "--markdown"]) == 0


def test_the_proxy_kept_beside_its_readmitted_source_is_dropped_by_the_second_check():
    with single_threaded():
        (r,) = bench.injection_seed("breast_cancer", "logreg", 412, ("ours",))
    _consistent(r)
    assert "worst_texture" in r["readmitted"] and "injected_proxy" in r["kept_before_recheck"]
    assert not r["success_before_recheck"]
    (check,) = [o for o in r["rechecked"] if o["made"]]
    assert (check["name"], check["given"]) == ("injected_proxy", "worst_texture")
    assert r["success"] and r["proxies"]["injected_proxy"] == "worst_texture"
