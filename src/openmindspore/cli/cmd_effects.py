"""``oms effects``: causal effect of a modeling choice from a search log (IPW / AIPW with logged propensities)."""

from __future__ import annotations

import argparse

from openmindspore.cli._common import add_command, print_json

__all__ = ["register", "run"]

EXAMPLES = """\
  oms search --space nb201 --budget 150 --out runs/nb201
  oms effects runs/nb201 --treatment skip                       # any skip connection in the cell?
  oms effects runs/nb201 --treatment "edge1=nor_conv_3x3" --reference uniform
  oms effects runs/cnn --treatment maxpool --metric test.accuracy --out runs/cnn/effects-maxpool
  oms effects runs/cnn --treatment "has(batchnorm) and depth >= 2" --estimator hajek --estimator aipw

named treatments: maxpool avgpool batchnorm dropout gelu globalpool dense stride2 kernel5_first depth>=K,
  NB201: conv3x3 conv1x1 skip no_skip zero edgeK=OP; or an expression with and/or/not, comparisons,
  variables depth layers convs denses pools and functions has(kind) count(kind) edge(k) first(kind, field)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "effects",
        "effect of a modeling choice from a search log, with 95%% CIs",
        EXAMPLES,
        "Estimate the average effect of a treatment (a predicate on the model spec) on a metric from "
        "a markov/random search log, using each trial's exact propensity under the sampling "
        "distribution in force when it was drawn: naive difference in means (confounded), Hajek "
        "(normalised IPW) and AIPW (doubly robust, cross-fitted ridge outcome model).",
    )
    p.add_argument("trials", metavar="TRIALS", help="search directory (or its trials.jsonl)")
    p.add_argument("--treatment", required=True, help="named treatment or expression (see below)")
    p.add_argument("--metric", help="test.accuracy | val.accuracy | score | SPLIT.NAME (default test.<objective>)")
    p.add_argument(
        "--estimator", action="append", choices=["naive", "hajek", "aipw"], help="repeatable (default: all three)"
    )
    p.add_argument(
        "--reference",
        default="search",
        choices=["search", "uniform"],
        help="target distribution: the search's own sampling distributions (default) or the "
        "grammar's uniform one (whole-walk density-ratio weights)",
    )
    p.add_argument(
        "--ci",
        default="floored",
        choices=["floored", "if", "bootstrap"],
        help="95%% CIs: influence function with each arm's variance floored by the outcome's pooled variance "
        "(default; holds on skewed outcomes with a small arm), plain influence function, or bootstrap",
    )
    p.add_argument(
        "--min-ess", type=float, default=5.0, help="positivity: minimum effective sample size per arm (default 5)"
    )
    p.add_argument(
        "--mc-samples",
        type=int,
        default=2000,
        help="walks per rebuilt chain when the propensity cannot be enumerated (default 2000)",
    )
    p.add_argument(
        "--placebo-draws",
        type=int,
        default=20,
        help="sensitivity check: random placebo treatments drawn with the logged propensities (default 20)",
    )
    p.add_argument(
        "--no-checks", action="store_true", help="skip the sensitivity checks (placebo, random common cause)"
    )
    p.add_argument(
        "--fidelity",
        default="lowest",
        metavar="lowest|STEPS",
        help="multi-fidelity searches (--halving): outcomes at the lowest budget, which every trial has "
        "(default), or at a higher budget (only the promoted trials, selected by their lowest-budget score)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write effects.json, report.md and forest.png here")
    p.add_argument("--json", action="store_true", help="print one JSON object per estimator")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from openmindspore.causal.effects import estimate_effects
    from openmindspore.errors import ConfigError

    if args.mc_samples < 100:
        raise ConfigError("--mc-samples", args.mc_samples, "an integer >= 100")
    res = estimate_effects(
        args.trials,
        args.treatment,
        args.metric,
        args.estimator or ("naive", "hajek", "aipw"),
        reference=args.reference,
        ci=args.ci,
        min_ess=args.min_ess,
        mc_samples=args.mc_samples,
        seed=args.seed,
        checks=not args.no_checks,
        placebo_draws=args.placebo_draws,
        fidelity=args.fidelity,
    )
    keys = ("treatment", "metric", "estimator", "ate", "ci95", "n", "ess")
    if args.json:
        for r in res.records:
            extra = {k: r[k] for k in ("placebo", "random_common_cause") if k in r}
            print_json({**{k: r[k] for k in keys}, "reference": r["reference"], "se": r["se"], **extra})
    else:
        for r in res.records:
            print(
                f"{r['estimator']:>6}: ate={r['ate']:+.4f} ci95=[{r['ci95'][0]:+.4f}, {r['ci95'][1]:+.4f}] "
                f"n={r['n']} ess={r['ess']:.1f} treated={r['n_treated']}"
            )
        print(res.answer)
        if res.checks:
            print(res.checks)
    if args.out:
        from openmindspore.causal.report import write_report

        paths = write_report(
            args.out,
            res.records,
            [res.answer],
            f"Effect of {res.treatment.name} on {res.metric}",
            res.info,
            notes=[res.checks],
        )
        if not args.json:
            print(f"wrote {paths['json']}, {paths['markdown']}, {paths['png']}")
    return 0
