"""One fit of a MindSpore learner, in a fresh process: train on the labelled pool rows, then predict.

Run as ``python -m openmindspore.active._round`` by :func:`openmindspore.train.isolated.train_isolated`
(MindSpore has crashed after several trainings in one process; a fit in its own process cannot take the
loop down, and a crash is retried). It reads one JSON request on stdin:

- ``train``: a ``TrainConfig`` whose ``train_subset`` lists the labelled pool (train-split) ids, sorted;
- ``labels``: the oracle's labels of those ids, in the same order (they replace the dataset's own);
- ``npz``: where to write the outputs; ``mc_passes``: MC-dropout passes over the pool (0: none);
- ``run_dir``: also write an ``oms train`` run directory there (``null``: no).

and writes ``npz`` with, for the whole pool (the train split, N rows) and the test split (M rows):
``logits`` (N + M, C) of the deterministic (inference-mode) network, ``embed`` (N + M, D) the input
of its last layer, and ``mc_logits`` (T, N, C): pass ``t`` is :meth:`train_forward` in inference mode
(batch norm uses its running statistics) with :meth:`dropout_masks` keyed ``(seed, MC_KEY + t, pool
id)``, so a pool point keeps its masks across rounds, processes and resumes. It prints one JSON line
of metrics (``steps``, ``final_loss``, ``seconds``). Exit status 2 is a bad request.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np

__all__ = ["MC_KEY", "fit_and_predict", "main"]

MC_KEY = 1 << 32  # MC-dropout pass t uses step key MC_KEY + t: never a training step's key
_BATCH = 500


def _forward(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, logits) of inference-mode ``model`` (a spec-driven CNN or MLP) for inputs ``x``."""
    from mindspore import Tensor

    cells = list(model.body.cell_list)
    emb, logits = [], []
    for i in range(0, len(x), _BATCH):
        h = Tensor(np.ascontiguousarray(x[i : i + _BATCH]))
        if model.channels_last:
            h = model.to_cl(h)
        for cell in cells[:-1]:
            h = cell(h)
        emb.append(h.asnumpy().reshape(len(h), -1))
        logits.append(cells[-1](h).asnumpy())
    return np.concatenate(emb), np.concatenate(logits)


def _mc_logits(model: Any, seed: int, x: np.ndarray, passes: int) -> np.ndarray:
    """(passes, N, C) logits of MC-dropout passes over pool rows ``x`` (their ids are their positions).
    Compiled once: the last batch is padded to the batch size (pad rows are dropped)."""
    import mindspore as ms
    from mindspore import Tensor

    def fwd(xb: Tensor, masks: tuple) -> Tensor:
        return model.train_forward(xb, masks)

    jitted = ms.jit(fwd)
    n = len(x)
    b = min(_BATCH, n)
    out: list[np.ndarray] = []
    for t in range(passes):
        parts = []
        for i in range(0, n, b):
            rows = np.arange(i, i + b)  # past the end: padding, keyed by ids no pool row has
            xb = np.zeros((b, *x.shape[1:]), x.dtype)
            xb[: min(b, n - i)] = x[i : i + b]
            masks = model.dropout_masks(seed, MC_KEY + t, rows)
            parts.append(jitted(Tensor(xb), ms.mutable(masks)).asnumpy()[: min(b, n - i)])
        out.append(np.concatenate(parts))
    return np.stack(out)


def fit_and_predict(req: dict[str, Any]) -> dict[str, Any]:
    """Train, predict, write ``req["npz"]`` (and the run directory); returns the metrics line."""
    from openmindspore.data import load_dataset
    from openmindspore.train.checkpoint import RunDir
    from openmindspore.train.config import TrainConfig
    from openmindspore.train.run import build_summary
    from openmindspore.train.trainer import Trainer

    t0 = time.perf_counter()
    cfg = TrainConfig.model_validate(req["train"])
    run = RunDir.ensure_new(req["run_dir"]) if req.get("run_dir") else None
    trainer = Trainer(cfg)
    labels = np.asarray(req["labels"], dtype=trainer.data.y_train.dtype)
    if labels.shape != trainer.data.y_train.shape:
        raise ValueError(f"{len(labels)} labels for {len(trainer.data.y_train)} training rows")
    trainer.data = replace(trainer.data, y_train=labels)  # the oracle's answers, not the dataset's labels
    loss, times = float("nan"), []
    while trainer.step < trainer.total_steps:
        ts = time.perf_counter()
        loss = trainer.train_step()
        times.append(time.perf_counter() - ts)
    model = trainer.model
    model.set_train(False)
    ds = load_dataset(cfg.dataset)
    emb, logits = _forward(model, np.concatenate([ds.x_train, ds.x_test]))
    passes = int(req.get("mc_passes") or 0)
    mc = _mc_logits(model, cfg.seed, ds.x_train, passes) if passes else np.zeros((0, len(ds.x_train), logits.shape[1]))
    tmp = f"{req['npz']}.tmp.npz"
    np.savez(tmp, logits=logits.astype(np.float32), embed=emb.astype(np.float32), mc_logits=mc.astype(np.float32))
    os.replace(tmp, req["npz"])
    if run is not None:
        run = RunDir.create(run.path, cfg.model_dump(mode="json"))
        run.save(trainer.state({"final_loss": loss}))
        run.write_summary(build_summary(trainer, "completed", loss, times, world_size=1))
    return {"steps": trainer.step, "final_loss": loss, "seconds": time.perf_counter() - t0}


def main() -> int:
    os.environ.setdefault("GLOG_v", "3")
    from openmindspore.errors import OMSError

    try:
        out = fit_and_predict(json.loads(sys.stdin.read()))
    except (OMSError, ValueError, KeyError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
