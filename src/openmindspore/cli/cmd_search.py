"""``oms search``: automatic modeling (Markov-chain / random / evolution search) and its reports."""

from __future__ import annotations

from typing import Any

from openmindspore.cli._common import (
    DATASET_HELP,
    add_address,
    add_command,
    add_engine_arg,
    add_study_logging,
    apply_log_level,
    dataset_arg,
    joined_cluster,
    print_json,
)

EXAMPLES = """\
  oms search --space nb201 --budget 100 --strategy markov --out runs/nb201
  oms search --space sklearn-classifier --dataset wine --budget 50 --out runs/wine
  oms search --space cnn --dataset mnist5k --budget 30 --workers 2 --out runs/cnn --set steps=300
  oms search --space cnn --dataset '{format: imagefolder, path: photos/, image_size: 32}' --budget 20 --out runs/mine
  oms search --space nb201 --dataset cifar100 --budget 30 --prior runs/nb201 runs/nb201b --out runs/nb201-c100  # warm
  oms search --space cnn --budget 27 --set steps=270 --halving 3 --out runs/cnn-sh  # 30/90/270 steps
  oms search --space nb201 --budget 100 --strategy tpe --out runs/tpe    # Optuna's TPE (extra [optuna])
  oms search --space nb201 --budget 100 --strategy-option model=1.0 --strategy-option model_kappa=2 --out runs/gp
  oms search --report runs/nb201
  oms search --report runs/a runs/b --report-out runs/compare     # overlay several searches
  oms search --report runs/cnn && oms train runs/cnn/best_train.yaml   # re-train the best CNN"""


def register(sub) -> None:
    p = add_command(
        sub,
        "search",
        "search models: Markov chain over a grammar, random, evolution",
        EXAMPLES,
        "Search a model space; every trial is logged to OUT/trials.jsonl with its propensities. "
        "Re-running with the same --out resumes the search.",
    )
    p.add_argument("--space", help="cnn | sklearn-classifier | sklearn-regressor | nb201")
    p.add_argument("--dataset", help="dataset (default per space: mnist5k, digits, diabetes, cifar10): " + DATASET_HELP)
    p.add_argument("--budget", type=int, help="number of models to evaluate (>= 1)")
    p.add_argument(
        "--strategy",
        default="markov",
        help="markov | random | evolution | tpe (Optuna; extra [optuna]) (default markov)",
    )
    p.add_argument("--workers", type=int, default=1, help="parallel evaluations (engine tasks) (default 1)")
    add_engine_arg(p, "the parallel evaluations")
    add_address(p)
    p.add_argument(
        "--prior",
        nargs="+",
        metavar="DIR",
        help="warm-start the markov chain from earlier searches (their trials.jsonl; shared states only; several "
        "are pooled, each adding its elite: three, with the strategy options warm_local_after=5, warm_model=0.5 "
        "and warm_model_after=5, met every transfer goal in docs/benchmarks.md); the prior is stored in "
        "OUT/search.json, and the summary reports its weight (1 trusted, 0 once this task's results disagree)",
    )
    p.add_argument(
        "--halving",
        metavar="ETA[,RUNGS]",
        help="multi-fidelity (successive halving, cnn space): every model trains steps/ETA**(RUNGS-1) steps, "
        "the best 1/ETA are re-trained ETA times longer, ... up to steps (RUNGS default 3); "
        "re-trainings go to OUT/promotions.jsonl and the best is chosen at the highest budget",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="search directory (trials.jsonl, search.json)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="space option, e.g. steps=300 (cnn training steps per candidate); repeatable",
    )
    p.add_argument(
        "--strategy-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="strategy option, e.g. model=1.0 (markov: the chain's options, such as model, model_kappa, local, "
        "contrast, epsilon; evolution: population, sample; tpe: TPESampler's); repeatable; stored in "
        "OUT/search.json (a resume must repeat them)",
    )
    p.add_argument("--report", nargs="+", metavar="DIR", help="write best_so_far.png + summary for searches")
    p.add_argument("--report-out", help="where --report writes (default: the first DIR)")
    p.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    p.add_argument("--quiet", action="store_true", help="no per-trial progress")
    add_study_logging(p)
    p.set_defaults(func=run)


def _options(pairs: list[str]) -> dict:
    import json

    from openmindspore.errors import ConfigError

    out = {}
    for kv in pairs:
        if "=" not in kv:
            raise ConfigError("--set", kv, "KEY=VALUE", "e.g. --set steps=300")
        k, v = kv.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def run(args) -> int:
    from openmindspore.errors import ConfigError

    apply_log_level(args.log_level)
    if args.report:
        from openmindspore.automl.report import write_report

        rep = write_report(args.report, args.report_out)
        if args.json:
            print_json({k: v for k, v in rep.items() if k != "text"})
        else:
            print(rep["text"])
            print(f"wrote {rep['png']}, {rep['summary_json']}, {rep['summary_txt']}")
        return 0
    for name in ("space", "budget", "out"):
        if getattr(args, name) is None:
            raise ConfigError(f"--{name}", None, "a value (required unless --report)", "see `oms search --help`")
    from openmindspore.automl import SPACES, STRATEGIES, run_search
    from openmindspore.automl.strategies import parse_strategy_options
    from openmindspore.data import dataset_key

    if args.space not in SPACES:
        raise ConfigError("--space", args.space, f"one of {sorted(SPACES)}")
    if args.strategy not in STRATEGIES:
        raise ConfigError("--strategy", args.strategy, f"one of {sorted(STRATEGIES)}")
    if args.budget < 1:
        raise ConfigError("--budget", args.budget, "an integer >= 1 (number of models to evaluate)")
    if args.workers < 1:
        raise ConfigError("--workers", args.workers, "an integer >= 1")
    strategy_options = parse_strategy_options(args.strategy, args.strategy_option)

    from openmindspore.automl.halving import parse_halving, rung_sizes
    from openmindspore.track.studies import StudyLog

    dataset = None if args.dataset is None else dataset_key(dataset_arg(args.dataset))
    halving = parse_halving(args.halving)
    # the bar counts evaluations weighted by their budget (rung r trains eta**r times longer), so its ETA holds
    sizes = [args.budget] if halving is None else rung_sizes(args.budget, halving["eta"], halving["rungs"])
    weights = [1] if halving is None else [halving["eta"] ** r for r in range(halving["rungs"])]
    study = StudyLog(
        args.out,
        f"search {args.space} {args.strategy}" + ("" if halving is None else f" halving {args.halving}"),
        sum(k * w for k, w in zip(sizes, weights)),
        [n.strip() for n in args.logger.split(",") if n.strip()],
        {"space": args.space, "strategy": args.strategy, "budget": args.budget, "seed": args.seed, "dataset": dataset},
        args.tracking_uri,
        quiet=args.quiet or args.json,
    )
    state: dict[str, Any] = {"best": None, "rung": 0}

    def on_trial(t) -> None:
        rung = getattr(t, "rung", 0)
        if rung > state["rung"]:  # a new rung: the best is reported at the highest budget
            state["rung"], state["best"] = rung, None
        if t.ok and (state["best"] is None or t.score > state["best"]):
            state["best"] = t.score
        val = f"{t.score:.4f}" if t.ok else f"[red]failed[/red] ({t.error})"
        best = f"{state['best']:.4f}" if state["best"] is not None else "-"
        at = "" if t.budget is None else f" @{t.budget} steps"
        if rung:
            line = f"promotion rung {rung}: trial {t.trial + 1}{at}: val={val} best={best} ({t.duration_s:.1f} s)"
            name = f"trial-{t.trial}-rung-{rung}"
        else:
            line = (
                f"trial {t.trial + 1}/{args.budget} {args.strategy}{at}: val={val} best={best} ({t.duration_s:.1f} s)"
            )
            name = f"trial-{t.trial}"
        study.trial(name, t.to_json(), line, f"best {best}", advance=1 if halving is None else weights[rung])

    with study, joined_cluster(args.address, args.workers, args.engine):
        res = run_search(
            args.space,
            args.strategy,
            args.budget,
            out_dir=args.out,
            seed=args.seed,
            workers=args.workers,
            engine=args.engine,
            dataset=dataset,
            space_options=_options(args.set),
            strategy_options=strategy_options,
            on_trial=on_trial,
            prior=args.prior,
            halving=halving,
        )
    b = res.best
    from openmindspore.automl.prior import prior_summary
    from openmindspore.automl.records import repeat_fields, repeats_note

    repeated = {} if b is None or b.budget is not None else repeat_fields(res.trials, b.spec)  # rung-0 repeats only

    prior = prior_summary(res.config, res.trials)
    out = {
        "tracking": study.close(),
        "out": args.out,
        "trials": len(res.trials),
        "failed": res.num_failed,
        "config": res.config,
        "promotions": len(res.promotions),
        "best": None
        if b is None
        else {"trial": b.trial, "score": b.score, **repeated, "metrics": b.metrics, "spec": b.spec, "budget": b.budget},
        "prior": prior,
    }
    if args.json:
        print_json(out)
    elif b is None:
        print(f"no successful trial in {len(res.trials)} ({res.num_failed} failed); log: {args.out}/trials.jsonl")
    else:
        import json

        note = repeats_note(repeated["evaluations"], repeated["mean_score"]) if repeated else ""

        print(
            f"best of {len(res.trials)} ({res.num_failed} failed): trial {b.trial}"
            + ("" if b.budget is None else f" at {b.budget} steps ({len(res.promotions)} promotions)")
            + ", "
            f"val {res.config['objective']}={b.score:.4f}{note}, "
            f"test={json.dumps(b.metrics.get('test', {}))}"
        )
        print("spec: " + json.dumps(b.spec))
        if prior:
            print(prior["text"])
        print(f"log: {args.out}/trials.jsonl")
    return 0 if b is not None else 1
