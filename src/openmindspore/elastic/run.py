"""Entry points for elastic runs: start one into a run directory, or resume one from disk.

Owns no state: resolves the options once, writes them to the run directory (``elastic.json``, read back
on resume) and hands them to the :class:`~openmindspore.elastic.driver.ElasticTrainer`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from openmindspore.elastic.driver import ElasticTrainer
from openmindspore.elastic.options import ElasticOptions
from openmindspore.train.checkpoint import RunDir, atomic_write
from openmindspore.train.config import TrainConfig, config_from_dict
from openmindspore.train.observe import RunObserver
from openmindspore.train.run import check_max_steps

__all__ = ["train_elastic", "resume_elastic", "read_elastic_options"]


def _write_options(run: RunDir, opts: ElasticOptions) -> None:
    atomic_write(run.path / "elastic.json", json.dumps(opts.to_dict(), indent=2))


def read_elastic_options(run_dir: str | Path) -> ElasticOptions | None:
    p = Path(run_dir) / "elastic.json"
    if not p.is_file():
        return None
    return ElasticOptions.from_dict(json.loads(p.read_text()))


def train_elastic(
    cfg: TrainConfig, opts: ElasticOptions, out_dir: str | Path, max_steps: int | None = None, quiet: bool = True
) -> dict[str, Any]:
    resolved = opts.resolve(cfg.batch_size)
    observer = RunObserver.open(cfg, Path(out_dir))  # a missing or unreachable tracker: nothing written
    run = RunDir.create(out_dir, cfg.model_dump(mode="json"))
    _write_options(run, resolved)
    return ElasticTrainer(cfg, resolved, run, quiet=quiet, observer=observer).run(None, max_steps)


def resume_elastic(
    run_dir: str | Path, opts: ElasticOptions, max_steps: int | None = None, quiet: bool = True
) -> dict[str, Any]:
    """Continue on ``opts.workers`` workers from the newest verified snapshot the run's holder still has, else
    the newest disk checkpoint (either written by N workers); ``summary.json`` records which (``resume``)."""
    from openmindspore.elastic.store.resume import choose_resume

    run = RunDir(run_dir).require_run()
    cfg = config_from_dict(run.read_config())
    point = choose_resume(run, store=opts.snapshot_store)
    state = point.state
    check_max_steps(max_steps, state.step)
    ahead = replace(opts, faults=tuple(f for f in opts.faults if f.step > state.step))  # past faults stay past
    resolved = ahead.resolve(cfg.batch_size)
    (run.path / "faults_fired.log").unlink(missing_ok=True)  # indices refer to the new fault list
    _write_options(run, resolved)
    summary = ElasticTrainer(cfg, resolved, run, quiet=quiet).run(state, max_steps)
    summary["resume"] = point.summary()
    run.write_summary(summary)
    return summary
