"""MindSpore learners for active learning: ``cnn``, ``mlp``, a layer spec, or a search directory's best spec.

:class:`NeuralLearner` follows the :class:`~openmindspore.active.learners.Learner` protocol. Each
``fit(idx, y)`` trains a fresh network in a fresh process (:mod:`openmindspore.active._round` through
:func:`openmindspore.train.isolated.train_isolated`) on the labelled pool rows (``TrainConfig.train_subset``:
samples keep their pool ids as dropout keys), which returns logits and embeddings for every pool and
test row and, when asked, ``mc_passes`` MC-dropout passes over the pool. Without dropout,
``ensemble = K`` trains K networks with K seeds, whose members are the posterior samples.

The learner is bound to the dataset: ``proba(x)``, ``embed(x)`` and ``proba_samples(x, t)`` answer for
rows of its pool or test split (looked up by content: a row's outputs are a function of its input, so
duplicates share them; MC samples are those of its first occurrence). ``embed`` is the input of the
network's last layer (member 0's).

Training schedule of a fit on ``n`` labels: ``max(min_steps, ceil(epochs * n / batch))`` Adam steps
(constant ``lr``) at batch ``min(train_batch, n)``, with seed ``train_seed(seed, member)``. A fit is a
function of (seed, labelled ids, labels), so a resumed loop re-fits to the same network.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.active.config import ActiveConfig
from openmindspore.errors import ConfigError

__all__ = ["NeuralLearner", "resolve_model", "has_dropout", "train_seed", "schedule"]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _best_search_spec(path: Path) -> list[dict]:
    """The spec of the best successful trial (highest validation score, earliest on ties) of a search."""
    meta, log = path / "search.json", path / "trials.jsonl"
    try:
        space = json.loads(meta.read_text()).get("space")
        trials = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()] if log.is_file() else []
    except (OSError, ValueError) as e:
        raise ConfigError("--model", str(path), "a readable oms search directory", f"{type(e).__name__}: {e}") from None
    if space != "cnn":
        raise ConfigError("--model", str(path), "a search over the cnn space", f"its space is {space!r}")
    ok = [t for t in trials if t.get("status") == "ok" and t.get("score") is not None]
    if not ok:
        raise ConfigError("--model", str(path), "a search with at least one successful trial", "run the search first")
    return max(ok, key=lambda t: (float(t["score"]), -int(t["trial"])))["spec"]


def _spec_file(path: Path) -> list[dict]:
    import yaml

    try:
        spec = yaml.safe_load(path.read_text())  # JSON is YAML
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError("--model", str(path), "a readable JSON/YAML layer spec", f"{type(e).__name__}") from None
    if isinstance(spec, dict) and "layers" in spec:
        spec = spec["layers"]
    if not isinstance(spec, list) or not all(isinstance(layer, dict) for layer in spec):
        raise ConfigError("--model", str(path), "a list of layer specs, e.g. [{type: conv, channels: 16}, ...]")
    return spec


def resolve_model(cfg: ActiveConfig) -> dict[str, Any]:
    """The ``TrainConfig.model`` of ``cfg.model``: the default CNN or an MLP (each with ``cfg.dropout``
    before its classifier head), a spec file's layers, or a search directory's best layers."""
    if cfg.model == "cnn":
        from openmindspore.models.cnn import DEFAULT_CNN

        extra = [{"type": "dropout", "rate": cfg.dropout}] if cfg.dropout > 0 else []
        return {"name": "cnn", "layers": [*DEFAULT_CNN, *extra]}
    if cfg.model == "mlp":
        return {"name": "mlp", "hidden": [128], "dropout": cfg.dropout}
    path = Path(cfg.model)
    return {"name": "cnn", "layers": _best_search_spec(path) if path.is_dir() else _spec_file(path)}


def has_dropout(model: dict[str, Any]) -> bool:
    """Whether the network of a resolved model dict has a dropout layer (MC dropout is possible)."""
    if model["name"] == "mlp":
        return float(model.get("dropout", 0.0)) > 0
    return any(layer.get("type") == "dropout" and float(layer.get("rate", 0.5)) > 0 for layer in model["layers"])


def train_seed(seed: int, member: int) -> int:
    """The training seed (initialisation, batch order, dropout) of ensemble ``member`` of loop ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(member), 16]).generate_state(1)[0] % (2**31))


def schedule(cfg: ActiveConfig, n: int) -> tuple[int, int]:
    """(steps, batch size) of a fit on ``n`` labels."""
    batch = min(cfg.train_batch, n)
    return max(cfg.min_steps, math.ceil(cfg.epochs * n / batch)), batch


class NeuralLearner:
    """A MindSpore network retrained from scratch, in its own process, at every ``fit``.

    ``mc_passes`` > 0 asks each fit for that many MC-dropout passes (only BALD needs them); ``run_dir``
    makes the next fit also write an ``oms train`` run directory there (see :meth:`export`)."""

    def __init__(
        self,
        cfg: ActiveConfig,
        model: dict[str, Any],
        x_pool: np.ndarray,
        x_test: np.ndarray,
        num_classes: int,
        seed: int,
        mc_passes: int = 0,
        keep_runs: bool = False,
        workdir: Path | None = None,
    ) -> None:
        self.cfg, self.model, self.num_classes, self.seed = cfg, model, int(num_classes), int(seed)
        self.ensemble = int(cfg.ensemble)
        self.dropout = has_dropout(model)
        self.has_samples = self.dropout or self.ensemble > 1
        self.mc_passes = int(mc_passes) if self.dropout else 0
        self.keep_runs = keep_runs
        self._x = np.ascontiguousarray(np.concatenate([np.asarray(x_pool), np.asarray(x_test)]))
        self._rows: dict[bytes, int] = {}
        for i, r in enumerate(self._x):
            self._rows.setdefault(r.tobytes(), i)
        self._n_pool = len(x_pool)
        if workdir is not None:
            Path(workdir).mkdir(parents=True, exist_ok=True)
        self._workdir = Path(tempfile.mkdtemp(prefix=".fits-", dir=workdir))
        self._logits: np.ndarray | None = None  # (K, N + M, C)
        self._embed: np.ndarray | None = None  # (N + M, D)
        self._mc: np.ndarray | None = None  # (K * T, N, C)
        self.last_run: Path | None = None

    def fresh(self) -> NeuralLearner:
        """An unfitted learner of the same kind that keeps no run directory and needs no MC passes."""
        new = NeuralLearner.__new__(NeuralLearner)
        new.__dict__.update(self.__dict__)
        new.mc_passes, new.keep_runs, new.last_run = 0, False, None
        new._logits = new._embed = new._mc = None
        return new

    def close(self) -> None:
        """Remove the fits' files (the learner and its fresh copies share them)."""
        shutil.rmtree(self._workdir, ignore_errors=True)

    def _request(self, idx: np.ndarray, y: np.ndarray, member: int, run_dir: Path | None) -> dict[str, Any]:
        from openmindspore.train.config import TrainConfig

        steps, batch = schedule(self.cfg, len(idx))
        train = {
            "dataset": self.cfg.dataset,
            "model": self.model,
            "optimizer": {"name": "adam", "lr": self.cfg.lr},
            "batch_size": batch,
            "steps": steps,
            "seed": train_seed(self.seed, member),
            "train_subset": idx.tolist(),
            "log_every": steps,
            "checkpoint_every": steps,
        }
        TrainConfig.model_validate(train)  # a bad config fails here, not in the child
        return {
            "train": train,
            "labels": y.tolist(),
            "npz": str(self._workdir / f"member_{member}.npz"),
            "mc_passes": self.mc_passes,
            "run_dir": None if run_dir is None else str(run_dir),
        }

    def fit(self, idx: np.ndarray, y: np.ndarray) -> None:
        """Train ``ensemble`` networks on pool rows ``idx`` with labels ``y`` (each in its own process)."""
        from openmindspore.train.isolated import train_isolated

        idx, y = np.asarray(idx, dtype=np.int64), np.asarray(y, dtype=np.int64)
        if len(idx) != len(y) or len(idx) == 0:
            raise ValueError(f"fit needs as many labels as indices (got {len(idx)} indices, {len(y)} labels)")
        order = np.argsort(idx, kind="stable")  # train_subset is sorted: labels follow it
        idx, y = idx[order], y[order]
        logits, mc = [], []
        embed = None
        self.last_run = None
        for m in range(self.ensemble):
            run_dir = None
            if self.keep_runs and m == 0 and self.ensemble == 1:
                run_dir = self._workdir / "run"
                shutil.rmtree(run_dir, ignore_errors=True)
            req = self._request(idx, y, m, run_dir)
            res = train_isolated(req, module="openmindspore.active._round")
            if res["status"] != "ok":
                raise RuntimeError(f"training the {self.cfg.model} learner failed: {res['error']}")
            with np.load(req["npz"]) as f:
                logits.append(f["logits"])
                mc.append(f["mc_logits"])
                embed = f["embed"] if embed is None else embed
            self.last_run = run_dir
        self._logits, self._embed = np.stack(logits), embed
        self._mc = np.concatenate(mc)

    def _positions(self, x: np.ndarray) -> np.ndarray:
        if self._logits is None:
            raise RuntimeError("the learner is not fitted: call fit(idx, y) first")
        x = np.asarray(x, dtype=self._x.dtype)
        try:
            return np.fromiter((self._rows[np.ascontiguousarray(r).tobytes()] for r in x), np.int64, len(x))
        except KeyError:
            raise ValueError("a MindSpore learner predicts rows of its pool and test split only") from None

    def proba(self, x: np.ndarray) -> np.ndarray:
        """(N, C) mean over ensemble members of the inference-mode softmax."""
        pos = self._positions(x)
        assert self._logits is not None
        return _softmax(self._logits[:, pos]).mean(axis=0)

    def proba_samples(self, x: np.ndarray, t: int) -> np.ndarray:
        """(S, N, C): the MC-dropout passes (of every member) or, without dropout, the members."""
        pos = self._positions(x)
        assert self._logits is not None and self._mc is not None
        if len(self._mc):
            if (pos >= self._n_pool).any():
                raise ValueError("MC-dropout passes exist for pool rows only")
            return _softmax(self._mc[:, pos])
        return _softmax(self._logits[:, pos])

    def embed(self, x: np.ndarray) -> np.ndarray:
        pos = self._positions(x)
        assert self._embed is not None
        return self._embed[pos].astype(np.float64)

    def export(self, dest: Path, calibration: dict[str, Any]) -> bool:
        """Move the last fit's run directory to ``dest`` (replacing what was there) with ``calibration.json``;
        False when the last fit kept none (an ensemble, or ``keep_runs`` off)."""
        from openmindspore.train.checkpoint import atomic_write

        if self.last_run is None or not self.last_run.is_dir():
            return False
        atomic_write(self.last_run / "calibration.json", json.dumps(calibration, indent=2, sort_keys=True))
        dest = Path(dest)
        old = dest.with_name(dest.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            dest.replace(old)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.last_run), str(dest))
        shutil.rmtree(old, ignore_errors=True)
        self.last_run = None
        return True
