"""Causal-effect estimators against known answers: NAS-Bench-201 by enumeration, and LaLonde (NSW vs CPS).

``nas``: repeated ``markov`` searches on NAS-Bench-201 (CIFAR-10 tables). The outcome is a cell's
expected accuracy (``test.accuracy``: mean over the table's training seeds). For each search and
treatment the ground truth is computed by enumerating all 15,625 cells under every trial's logged
sampling distribution ``q_t``::

    truth = (1/n) sum_t (E_{q_t}[Y | T=1] - E_{q_t}[Y | T=0])        (reference "search")

which is what the Hájek and AIPW estimators target with the exact propensities ``P_{q_t}(T=1)``.
The naive difference in means pools trials drawn from different ``q_t`` and is confounded by the
search's learning. Per estimator: bias (mean error), RMSE and 95% CI coverage over the searches.
The same searches are also re-weighted to the uniform distribution over all cells
(``--reference uniform``, truth ``E_U[Y|T=1] - E_U[Y|T=0]`` over the 15,625 cells): one line per
treatment reports how often positivity (ESS >= 5 per arm) held and the errors where it did.

``lalonde``: NSW treated (Dehejia-Wahba sample, 185) + CPS-1 controls (15,992), effect on 1978
earnings for the treated (ATT); experimental benchmark: NSW treated minus NSW controls ($1,794).
Our naive, Hájek (logistic propensity on the usual covariates) and AIPW (plus a linear outcome
model of the controls) next to DoWhy (propensity-score weighting, matching, stratification and
linear regression, same covariates).

    .venv/bin/python benchmarks/causal.py nas --reps 100 --budget 150
    .venv/bin/python benchmarks/causal.py nas --reps 100 --budget 150 --prior-dataset cifar100   # warm-started
    .venv/bin/python benchmarks/causal.py lalonde

Intervals: ``--ci floored if`` (default both; ``floored``, the default of ``oms effects``, floors each
arm's variance by the outcome's pooled variance, see :mod:`openmindspore.causal.estimators`); the
records carry their widths. The sensitivity checks of ``oms effects`` (placebo treatment, random
common cause) run on every log: the share of logs where they passed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import emit  # noqa: E402

from openmindspore.automl import make_space, run_search  # noqa: E402
from openmindspore.causal.estimators import EffectData, check_positivity, estimate  # noqa: E402
from openmindspore.causal.refute import placebo_check, random_common_cause_check  # noqa: E402
from openmindspore.causal.searchlog import EnumeratedWalks, log_units  # noqa: E402
from openmindspore.causal.treatments import get_treatment  # noqa: E402
from openmindspore.errors import ConfigError  # noqa: E402

ESTS = ("naive", "hajek", "aipw")


def _summary(errs: list[float], covered: list[bool], widths: list[float] | None = None) -> dict:
    e = np.asarray(errs)
    w = {} if not widths else {"width_mean": float(np.mean(widths)), "width_median": float(np.median(widths))}
    return {
        **w,
        "bias": float(e.mean()) if len(e) else None,
        "bias_se": float(e.std(ddof=1) / np.sqrt(len(e))) if len(e) > 1 else None,
        "rmse": float(np.sqrt((e**2).mean())) if len(e) else None,
        "coverage": float(np.mean(covered)) if covered else None,
    }


def nas(args: argparse.Namespace) -> None:
    space = make_space("nb201", args.dataset)
    g = space.grammar
    treatments = [get_treatment(t) for t in args.treatments]
    enums = {t.name: EnumeratedWalks(g, t) for t in treatments}
    en0 = enums[treatments[0].name]
    y_all = np.array([np.mean(space.table["".join(map(str, row))]["val_acc"]) for row in en0.W])
    truth_u = {t: float(y_all[en.T == 1].mean() - y_all[en.T == 0].mean()) for t, en in enums.items()}
    res: dict = {
        t.name: {
            "search": {(e, c): ([], [], []) for e in ESTS for c in args.ci},
            "uniform": {(e, c): ([], [], []) for e in ESTS for c in args.ci},
            "placebo": {e: [] for e in ESTS},
            "rcc": [],
            "truth": [],
            "ess": [],
            "uniform_fail": 0,
            "search_fail": 0,
            "e_range": [],
        }
        for t in treatments
    }
    options: dict = json.loads(args.options) if args.options else {}
    if args.prior_dataset:  # warm-started logs: a prior from searches on another dataset
        import tempfile

        from openmindspore.automl.prior import build_prior

        with tempfile.TemporaryDirectory() as tmp:
            dirs = [Path(tmp) / f"src{i}" for i in range(args.prior_searches)]
            for i, d in enumerate(dirs):
                run_search("nb201", "markov", args.budget, out_dir=d, seed=90_000 + i, dataset=args.prior_dataset)
            options["warm"] = build_prior(dirs, g)
    t0 = time.perf_counter()
    for r in range(args.reps):
        out = run_search(space, args.strategy, args.budget, seed=args.seed + r, strategy_options=options)
        for tr in treatments:
            en, acc = enums[tr.name], res[tr.name]
            units = log_units(out.config, out.trials, g, tr, "test.accuracy", enumerated=en)
            ok = [x for x in out.trials if x.ok]
            diffs = []
            for x in ok:
                P = en.trial_probs(g, x)
                p1, p0 = P * en.T, P * (1 - en.T)
                diffs.append(p1 @ y_all / p1.sum() - p0 @ y_all / p0.sum())
            truth = float(np.mean(diffs))
            acc["truth"].append(truth)
            acc["e_range"].append((float(units.e.min()), float(units.e.max())))
            for ref, target in (("search", truth), ("uniform", truth_u[tr.name])):
                data = units.effect_data(ref, seed=r)
                try:
                    check_positivity(data, tr.name, e=units.e if ref == "search" else None)
                except ConfigError:  # counted and reported: the estimators refuse this log
                    acc[f"{ref}_fail"] += 1
                    continue
                for name in ESTS:
                    for ci in args.ci:
                        est = estimate(data, name, ci=ci)
                        acc[ref][(name, ci)][0].append(est.ate - target)
                        acc[ref][(name, ci)][1].append(est.ci95[0] <= target <= est.ci95[1])
                        acc[ref][(name, ci)][2].append(est.ci95[1] - est.ci95[0])
                    if ref == "search" and name == "hajek":
                        acc["ess"].append(est.ess)
                if ref == "search" and args.placebo_draws:  # sensitivity checks as `oms effects` runs them
                    pl = placebo_check(units, ESTS, args.placebo_draws, seed=r, ci=args.ci[0])
                    for name in ESTS:
                        acc["placebo"][name].append(pl[name]["passed"])
                    ea = estimate(data, "aipw", ci=args.ci[0])
                    acc["rcc"].append(random_common_cause_check(units, ea.ate, ea.se, seed=r)["passed"])
    secs = time.perf_counter() - t0
    for tr in treatments:
        acc = res[tr.name]
        lo = [a for a, _ in acc["e_range"]]
        hi = [b for _, b in acc["e_range"]]
        for name, ci in acc["search"]:
            errs, cov, wid = acc["search"][(name, ci)]
            checks = {}
            if args.placebo_draws and ci == args.ci[0]:
                checks = {"placebo_passed": float(np.mean(acc["placebo"][name]))}
                if name == "aipw":
                    checks["random_common_cause_passed"] = float(np.mean(acc["rcc"]))
            emit(
                {
                    "bench": "causal_nas",
                    "reference": "search",
                    "strategy": args.strategy,
                    "options": {k: v for k, v in options.items() if k != "warm"},
                    "treatment": tr.name,
                    "estimator": name,
                    "ci": ci,
                    "seed0": args.seed,
                    "prior": f"{args.prior_searches} searches on {args.prior_dataset}" if args.prior_dataset else None,
                    "reps": args.reps,
                    "budget": args.budget,
                    "truth_mean": float(np.mean(acc["truth"])),
                    "truth_sd": float(np.std(acc["truth"])),
                    "mean_ess": float(np.mean(acc["ess"])),
                    "propensity_min": float(np.min(lo)),
                    "propensity_max": float(np.max(hi)),
                    "positivity_ok": args.reps - acc["search_fail"],
                    **_summary(errs, cov, wid),
                    **checks,
                    "seconds": round(secs, 1),
                    "load_avg_1m": os.getloadavg()[0],
                }
            )
        for name, ci in acc["uniform"]:
            errs, cov, wid = acc["uniform"][(name, ci)]
            emit(
                {
                    "bench": "causal_nas",
                    "reference": "uniform",
                    "treatment": tr.name,
                    "estimator": name,
                    "ci": ci,
                    "reps": args.reps,
                    "budget": args.budget,
                    "truth": truth_u[tr.name],
                    "positivity_ok": args.reps - acc["uniform_fail"],
                    **_summary(errs, cov, wid),
                }
            )


# ---------------------------------------------------------------------------------------------- LaLonde
def _lalonde_frame():
    import pandas as pd
    from causaldata import cps_mixtape, nsw_mixtape

    nsw = nsw_mixtape.load_pandas().data
    cps = cps_mixtape.load_pandas().data
    exp = float(nsw.loc[nsw.treat == 1, "re78"].mean() - nsw.loc[nsw.treat == 0, "re78"].mean())
    df = pd.concat([nsw[nsw.treat == 1], cps], ignore_index=True).drop(columns=["data_id"])
    df = df.astype({c: "float64" for c in df.columns})
    for c in ("age", "educ", "re74", "re75"):
        df[c + "2"] = df[c] ** 2
    df["u74"], df["u75"] = (df.re74 == 0).astype(float), (df.re75 == 0).astype(float)
    return df, exp


COVS = [
    "age",
    "age2",
    "educ",
    "educ2",
    "black",
    "hisp",
    "marr",
    "nodegree",
    "re74",
    "re75",
    "re742",
    "re752",
    "u74",
    "u75",
]


def lalonde_ours(df) -> tuple[np.ndarray, list[dict]]:
    """Propensities and our naive / Hájek / AIPW ATT rows on the NSW + CPS frame."""
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X = StandardScaler().fit_transform(df[COVS].to_numpy())
    t, y = df.treat.to_numpy(), df.re78.to_numpy()
    # the maximum-likelihood logistic fit, converged tightly (statsmodels' Newton fit gives the same ATT;
    # sklearn's default tolerance stops lbfgs early: Hájek ATT 1,585 instead of 1,570)
    e = LogisticRegression(C=1e6, tol=1e-10, max_iter=20000).fit(X, t).predict_proba(X)[:, 1]
    m0 = LinearRegression().fit(X[t == 0], y[t == 0]).predict(X)
    m1 = LinearRegression().fit(X[t == 1], y[t == 1]).predict(X)
    # ATT: treated weight 1, controls e/(1-e); the model part averages m1 - m0 over the treated (rho = t)
    d = EffectData(y, t, np.ones_like(y), e / (1 - e), f=np.where(t == 1, m1, m0), g1=m1, g0=m0, rho=t)
    rows = []
    for name in ESTS:
        est = estimate(d, name)
        rows.append({"method": f"openmindspore {name}", "att": est.ate, "ci95": list(est.ci95), "ess": est.ess})
    return e, rows


def dowhy_att(df, method: str, propensity: np.ndarray | None = None) -> float:
    """DoWhy's ATT with ``method`` (e.g. ``propensity_score_weighting``): its own propensity model and
    default clipping to [0.05, 0.95] when ``propensity`` is None, else ours without clipping."""
    import logging

    import networkx as nx

    if not hasattr(nx.algorithms, "d_separated"):  # dowhy 0.12 (the last with numpy<2) vs networkx >= 3.5
        nx.algorithms.d_separated = nx.d_separated = nx.is_d_separator
    from dowhy import CausalModel

    logging.getLogger("dowhy").setLevel(logging.ERROR)
    frame = df[COVS + ["treat", "re78"]].copy()  # fresh per call: DoWhy writes (clipped) propensities into it
    frame["treat"] = frame["treat"].astype(bool)
    params: dict = {}
    if propensity is not None:
        frame["propensity_score"] = propensity
    if method.endswith("weighting"):
        params = {"weighting_scheme": "ips_normalized_weight"}
        if propensity is not None:
            params.update(min_ps_score=0.0, max_ps_score=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = CausalModel(data=frame, treatment="treat", outcome="re78", common_causes=COVS)
        ident = model.identify_effect(proceed_when_unidentifiable=True)
        return float(
            model.estimate_effect(
                ident, method_name=f"backdoor.{method}", target_units="att", method_params=params
            ).value
        )


def lalonde(args: argparse.Namespace | None) -> None:
    df, exp = _lalonde_frame()
    t = df.treat.to_numpy()
    base = {
        "bench": "causal_lalonde",
        "experimental": exp,
        "n_treated": int(t.sum()),
        "n_control": int((1 - t).sum()),
        "estimand": "ATT",
    }
    e, rows = lalonde_ours(df)
    for r in rows:
        emit({**base, **r, "error_vs_experimental": r["att"] - exp})
    try:
        import dowhy

        del dowhy  # only checking that it is installed
    except ImportError:
        emit({**base, "method": "dowhy", "error": "dowhy not installed (pip install -e '.[test]')"})
        return
    for label, prop in (("defaults", None), ("our propensity, no clipping", e)):
        methods = ["propensity_score_weighting", "propensity_score_matching", "propensity_score_stratification"]
        if prop is None:
            methods.append("linear_regression")
        for method in methods:
            row = {**base, "method": f"dowhy {method} ({label})"}
            try:
                att = dowhy_att(df, method, prop)
                emit({**row, "att": att, "error_vs_experimental": att - exp})
            except Exception as ex:  # report and go on: one DoWhy method failing is a result too
                emit({**row, "error": f"{type(ex).__name__}: {ex}"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="which", required=True)
    p = sub.add_parser("nas")
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--budget", type=int, default=150)
    p.add_argument("--seed", type=int, default=0, help="search r uses seed + r")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--treatments", nargs="+", default=["skip", "avgpool", "zero", "edge1=nor_conv_3x3"])
    p.add_argument("--strategy", default="markov", help="search strategy of the logs (random: i.i.d. uniform cells)")
    p.add_argument(
        "--ci", nargs="+", default=["floored", "if"], choices=["floored", "if"], help="interval methods (first: checks)"
    )
    p.add_argument("--placebo-draws", type=int, default=20, help="placebo check per log and treatment (0: off)")
    p.add_argument("--prior-dataset", help="warm-start every search from markov searches on this dataset")
    p.add_argument("--prior-searches", type=int, default=5, help="source searches for --prior-dataset")
    p.add_argument("--options", help='the strategy\'s options as JSON, e.g. \'{"model": 1.0, "model_kappa": 2.0}\'')
    sub.add_parser("lalonde")
    args = ap.parse_args(argv)
    nas(args) if args.which == "nas" else lalonde(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
