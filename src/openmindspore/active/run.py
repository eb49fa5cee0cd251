"""Driving a run: check everything, resume or start ``OUT``, run the seeds as engine tasks, write reports.

Nothing is written until the options, the dataset, the learner and any ``--labels`` answers have been
checked, so a bad input leaves ``OUT`` as it was. The same ``OUT`` with the same options resumes each
seed from its last saved round (see :mod:`openmindspore.active.loop`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openmindspore.active.config import NEURAL_OPTIONS, ActiveConfig, check_against, is_neural
from openmindspore.active.learners import make_learner
from openmindspore.active.loop import run_seed
from openmindspore.active.oracle import read_answers, store_answers, write_queries
from openmindspore.active.report import write_run_files
from openmindspore.active.state import VERSION, SeedState, load_run, write_json
from openmindspore.errors import ConfigError

__all__ = ["run_active", "prepare"]


def _neural_model(cfg: ActiveConfig, ds: Any) -> tuple[dict[str, Any], bool]:
    """A MindSpore learner's resolved model (checked against the data) and whether it has posterior samples."""
    from openmindspore.active.neural import has_dropout, resolve_model

    if cfg.semi_supervised:
        raise ConfigError(
            "--semi-supervised", True, "a scikit-learn learner", f"drop it for --model {cfg.model} (MindSpore)"
        )
    model = resolve_model(cfg)
    if model["name"] == "cnn":
        from openmindspore.models.cnn import validate_spec

        if len(ds.input_shape) != 3:
            raise ConfigError("--model", cfg.model, "an image dataset for a CNN", "use --model mlp for tabular data")
        validate_spec(model["layers"], ds.input_shape, ds.num_classes)
    return model, has_dropout(model) or cfg.ensemble > 1


def prepare(cfg: ActiveConfig, out: Path, labels_csv: str | None = None) -> tuple[dict[int, int], dict | None]:
    """Every check before a write: dataset and learner fit the options, ``out`` is new/empty or holds
    this very run, answers (if any) are valid. Returns the checked answers and a MindSpore learner's
    resolved model (the one the run already uses when it resumes)."""
    from openmindspore.data import load_dataset

    ds = load_dataset(cfg.dataset)
    model: dict | None = None
    if is_neural(cfg.model) and ds.task == "classification":
        model, has_samples = _neural_model(cfg, ds)
    else:
        has_samples = make_learner(cfg.model, ds.x_train[:1], max(ds.num_classes, 1), ensemble=cfg.ensemble).has_samples
    check_against(cfg, ds.task, len(ds.x_train), has_samples)
    run = load_run(out)
    if run is None and out.exists() and any(out.iterdir()):
        raise ConfigError(
            "--out", str(out), "a new or empty directory, or one oms active wrote", "choose another --out"
        )
    # a run written before an option existed ran with that option's default
    old = {**ActiveConfig.model_construct().model_dump(), **run["config"]} if run is not None else None
    new = cfg.model_dump()
    if old is not None and not is_neural(cfg.model):  # e.g. a run from before min_steps' default became 300
        old.update({k: new[k] for k in NEURAL_OPTIONS})
    if old is not None and old != new:
        diff = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v]
        raise ConfigError(
            "--out", str(out), "the options of the run it holds to resume it", f"differs in {'; '.join(diff)}"
        )
    if run is not None and run.get("model_spec") is not None:
        model = run["model_spec"]
    if labels_csv is None:
        return {}, model
    if cfg.oracle != "files":
        raise ConfigError("--labels", labels_csv, "answers for --oracle files", "add --oracle files (or drop --labels)")
    if run is None:
        raise ConfigError(
            "--labels", labels_csv, "answers to the queries of an existing run", "run without --labels first"
        )
    return read_answers(labels_csv, out, ds.num_classes), model


def run_active(
    cfg: ActiveConfig,
    out: str | Path,
    workers: int = 1,
    labels_csv: str | None = None,
    on_round: Callable[[dict], None] | None = None,
    kill_at: int | None = None,
    engine: str = "ray",
) -> dict[str, Any]:
    """Run or resume ``cfg`` in ``out``; returns the summary (``status`` ``waiting`` when the file
    oracle has open queries, listed in ``OUT/queries.jsonl``). Seeds run in parallel as ``engine`` tasks."""
    from openmindspore.engine.tasks import parallel_map, shutdown

    out = Path(out)
    if workers < 1:
        raise ConfigError("--workers", workers, "an integer >= 1")
    answers, model = prepare(cfg, out, labels_csv)
    seeds = list(range(cfg.seed, cfg.seed + cfg.seeds))
    if load_run(out) is None:
        manifest = {"version": VERSION, "config": cfg.model_dump(), "seeds": seeds, "model_spec": model}
        write_json(out / "state.json", manifest)
    if answers:
        store_answers(out, answers)
    jobs = [
        {"config": cfg.model_dump(), "out": str(out), "seed": s, "kill_at": kill_at, "model_spec": model} for s in seeds
    ]
    fn = functools.partial(run_seed, on_round=on_round) if workers <= 1 else run_seed
    try:
        parallel_map(fn, jobs, workers, engine)
    finally:
        shutdown()
    asking: dict[int, list[int]] = {}
    for s in seeds:
        st = SeedState.load(out, s)
        if st is not None and st.status == "waiting":
            for i in st.pending:
                asking.setdefault(int(i), []).append(s)
    if asking or (out / "queries.jsonl").exists():
        from openmindspore.data import load_dataset

        write_queries(out, asking, load_dataset(cfg.dataset).x_train)
    return write_run_files(out)
