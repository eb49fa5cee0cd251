"""LaLonde (NSW treated + CPS controls): our ATT estimators near the experiment, and equal to DoWhy's
weighting estimator given the same propensities."""

import importlib.util

import pytest

from oms_testing import ROOT, from_test_extra

from_test_extra("causaldata")
spec = importlib.util.spec_from_file_location("bench_causal", ROOT / "benchmarks" / "causal.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_att_estimates_land_near_the_experimental_answer_and_match_dowhy():
    df, exp = bench._lalonde_frame()
    assert exp == pytest.approx(1794.34, abs=0.5)
    e, rows = bench.lalonde_ours(df)
    rows = {r["method"]: r for r in rows}
    assert rows["openmindspore naive"]["att"] < -8000  # CPS controls earn far more: the naive answer is wrong
    for k in ("hajek", "aipw"):
        r = rows[f"openmindspore {k}"]
        assert abs(r["att"] - exp) < 600 and r["ci95"][0] < exp < r["ci95"][1]
    from_test_extra("dowhy")
    dw = bench.dowhy_att(df, "propensity_score_weighting", e)
    assert dw == pytest.approx(rows["openmindspore hajek"]["att"], rel=1e-9)
