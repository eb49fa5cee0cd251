"""Effects of a treatment from a search directory: ``estimate_effects(dir, "maxpool")``.

Loads ``search.json`` + ``trials.jsonl``, computes each trial's propensity of the treatment (see
:mod:`openmindspore.causal.searchlog`), checks positivity, and runs the estimators. The result's
``records`` are the JSON lines of ``oms effects``:
``{"treatment", "metric", "estimator", "ate", "ci95": [lo, hi], "n", "ess", ...}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.causal.estimators import ESTIMATORS, check_positivity, estimate
from openmindspore.causal.refute import placebo_check, random_common_cause_check
from openmindspore.causal.searchlog import REFERENCES, log_units
from openmindspore.causal.treatments import Treatment, get_treatment
from openmindspore.errors import ConfigError

__all__ = ["EffectsResult", "estimate_effects", "answer_sentence", "checks_sentence", "default_metric"]


@dataclass
class EffectsResult:
    """Estimates of one treatment's effect on one metric, plus how they were obtained."""

    treatment: Treatment
    metric: str
    reference: str
    records: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def answer(self) -> str:
        return answer_sentence(self.treatment, self.metric, self.records, self.info.get("estimand", ""))

    @property
    def checks(self) -> str:
        return checks_sentence(self.records)


def default_metric(config: dict[str, Any], first_metrics: dict[str, Any]) -> str:
    """``test.<objective>`` when trials report it, else ``score`` (the validation objective)."""
    obj = config.get("objective", "accuracy")
    return f"test.{obj}" if obj in (first_metrics.get("test") or {}) else "score"


def _fmt(v: float) -> str:
    return f"{v:+.4f}"


def answer_sentence(tr: Treatment, metric: str, records: Sequence[dict[str, Any]], estimand: str = "") -> str:
    """The question answered in words, from the preferred estimator (hajek > aipw > factorial > naive:
    on adaptive search logs Hájek had the best bias and coverage, see docs/benchmarks.md)."""
    if not records:
        return "no estimate"
    pref = {"hajek": 0, "aipw": 1, "factorial": 2, "naive": 3}
    r = min(records, key=lambda x: pref.get(x["estimator"], 9))
    lo, hi = r["ci95"]
    ate = r["ate"]
    sig = (
        "the 95% CI excludes 0"
        if (lo > 0 or hi < 0)
        else "the 95% CI includes 0: no effect detectable at this sample size"
    )
    text = (
        f"{tr.phrase_off[0].upper() + tr.phrase_off[1:]} (vs. {tr.phrase_on}) changes {metric} by "
        f"{_fmt(-ate)} [{_fmt(-hi)}, {_fmt(-lo)}]; equivalently {tr.phrase_on} changes it by {_fmt(ate)} "
        f"[{_fmt(lo)}, {_fmt(hi)}] ({r['estimator']}, n={r['n']}, ESS={r['ess']:.1f}; {sig})."
    )
    others = [
        f"{x['estimator']} {_fmt(x['ate'])} [{_fmt(x['ci95'][0])}, {_fmt(x['ci95'][1])}]" for x in records if x is not r
    ]
    if others:
        text += " Other estimators: " + "; ".join(others) + "."
    if estimand:
        text += f" Levels: {estimand}." if estimand.startswith("on = ") else f" Estimand: {estimand}."
    return text


def checks_sentence(records: Sequence[dict[str, Any]]) -> str:
    """The sensitivity checks in words ("" when none ran)."""
    parts = []
    pl = [r for r in records if "placebo" in r]
    if pl:
        p0 = pl[0]["placebo"]
        items = [
            f"{r['estimator']} {_fmt(r['placebo']['mean_ate'])} on average, {r['placebo']['ci_excludes_0']} of "
            f"{r['placebo']['draws']} CIs exclude 0: {'passed' if r['placebo']['passed'] else 'FAILED'}"
            for r in pl
        ]
        parts.append(
            f"Placebo treatment ({p0['draws']} random treatments drawn with the logged propensities; should be ~0, "
            f"at most {p0['max_allowed']} CIs excluding 0): " + "; ".join(items) + "."
        )
    for r in records:
        c = r.get("random_common_cause")
        if c:
            parts.append(
                f"Random common cause ({r['estimator']}, {c['draws']} independent N(0,1) covariates added to the "
                f"outcome model): the estimate moves by at most {c['max_abs_change']:.4f} "
                f"({c['max_abs_change_se']:.2f} s.e., tolerance {c['tol_se']:g}): "
                f"{'passed' if c['passed'] else 'FAILED'}."
            )
    failed = [r["estimator"] for r in pl if not r["placebo"]["passed"]]
    if any(r["estimator"] == "naive" for r in pl) and failed == ["naive"]:
        parts.append("(The naive difference failing the placebo is expected on adaptive logs: it is confounded.)")
    return " ".join(parts)


_ESTIMANDS = {
    "search": "E[Y | T=1] - E[Y | T=0] under each trial's sampling distribution, averaged over the trials",
    "uniform": "E[Y | T=1] - E[Y | T=0] under the grammar's uniform walk distribution",
}


def _fidelity_outcomes(d: Path, config: dict[str, Any], fidelity: str | int) -> dict[int, Any] | None:
    """The outcome records at ``fidelity`` (None: the trials' own, rung 0's)."""
    if fidelity == "lowest":
        return None
    budgets = (config.get("halving") or {}).get("budgets", [])
    try:
        b = int(fidelity)
    except (TypeError, ValueError):
        b = -1
    if b not in budgets:
        raise ConfigError(
            "--fidelity",
            fidelity,
            f"'lowest' or one of the search's budgets {budgets}"
            if budgets
            else "'lowest' (not a multi-fidelity search)",
            "omit --fidelity to use every trial's outcome at the lowest budget",
        )
    if b == budgets[0]:
        return None
    from openmindspore.automl.halving import load_promotions

    return {p.promoted_from: p for p in load_promotions(d) if p.budget == b}


def estimate_effects(
    search_dir: str | Path,
    treatment: str,
    metric: str | None = None,
    estimators: Sequence[str] = ESTIMATORS,
    reference: str = "search",
    ci: str = "floored",
    min_ess: float = 5.0,
    mc_samples: int = 2000,
    seed: int = 0,
    checks: bool = True,
    placebo_draws: int = 20,
    fidelity: str | int = "lowest",
) -> EffectsResult:
    """Estimate the effect of ``treatment`` on ``metric`` from the search log in ``search_dir``.

    ``checks`` adds the sensitivity checks of :mod:`openmindspore.causal.refute` to each record:
    ``"placebo"`` (every estimator, ``placebo_draws`` random treatments with the logged propensities;
    bootstrap CIs are replaced by floored ones there)
    and ``"random_common_cause"`` (AIPW).

    ``fidelity`` (multi-fidelity searches, :mod:`openmindspore.automl.halving`): ``"lowest"`` (default)
    uses every trial's own outcome, at rung 0's budget, which every trial has; a budget in steps uses the
    promotions re-evaluated at that budget instead. Only the trials promoted that far are units then, and
    promotion was chosen by the rung-0 score: that estimate is conditional on being promoted (a selected
    population), not the search's population effect."""
    from openmindspore.automl.search import load_trials

    bad = [e for e in estimators if e not in ESTIMATORS]
    if bad or not estimators:
        raise ConfigError("--estimator", bad or list(estimators), f"estimators among {list(ESTIMATORS)}")
    if reference not in REFERENCES:
        raise ConfigError("--reference", reference, f"one of {list(REFERENCES)}")
    d = Path(search_dir)
    if d.is_file() and d.name == "trials.jsonl":
        d = d.parent
    tr = get_treatment(treatment)
    config, trials = load_trials(d)
    if not trials:
        raise ConfigError("TRIALS", str(search_dir), "a search log with trials", "run `oms search` first")
    from openmindspore.automl.spaces import make_space

    grammar = make_space(config["space"], config["dataset"], **config.get("space_options", {})).grammar
    ok = [x for x in trials if x.ok]
    metric = metric or default_metric(config, ok[0].metrics if ok else {})
    outcomes = _fidelity_outcomes(d, config, fidelity)
    units = log_units(config, trials, grammar, tr, metric, mc_samples=mc_samples, seed=seed, outcomes=outcomes)
    data = units.effect_data(reference, seed=seed)
    check_positivity(data, tr.name, min_ess=min_ess, e=units.e if reference == "search" else None)
    if placebo_draws < 2:
        raise ConfigError(
            "--placebo-draws", placebo_draws, "an integer >= 2", "or turn the checks off with --no-checks"
        )
    records = []
    for name in estimators:
        est = estimate(data, name, ci=ci, seed=seed)
        records.append(
            {
                "treatment": tr.name,
                "metric": metric,
                "estimator": name,
                "reference": reference,
                "ci_method": ci,
                **est.to_json(),
            }
        )
    if checks:
        pci = "floored" if ci == "bootstrap" else ci  # 20 bootstraps of 1000 would be slow; same centre
        placebo = placebo_check(units, estimators, placebo_draws, seed=seed, reference=reference, ci=pci)
        for r in records:
            r["placebo"] = placebo[r["estimator"]]
            if r["estimator"] == "aipw":
                r["random_common_cause"] = random_common_cause_check(
                    units, r["ate"], r["se"], seed=seed, reference=reference
                )
    info = {
        **units.info,
        "search_dir": str(d),
        "space": config["space"],
        "dataset": config["dataset"],
        "strategy": config["strategy"],
        "estimand": _ESTIMANDS[reference],
        "propensity_range": [float(np.min(units.e)), float(np.max(units.e))],
    }
    if "halving" in config:
        info["fidelity"] = config["halving"]["budgets"][0] if outcomes is None else int(fidelity)
    return EffectsResult(tr, metric, reference, records, info)
