"""One seed's active-learning loop: label, fit, evaluate, decide, ask; resumable after every round.

Round 0 asks for the ``initial`` labels (``--init``); after the labels of round r arrive the learner
is fitted on every label so far and evaluated (one *row*), a stop rule may end the seed, and otherwise
the strategy picks round r+1's queries with ``default_rng([seed, r + 1])``. The state is saved after
each round with its queries pending, so a run killed at any point resumes by re-fitting the same
labels and asking for the same queries. A row holds, for the model of round r:

``labels``, test ``accuracy``; ``temperature`` (cross-fitted on the acquired labels), test ``nll`` and
``ece`` after it and ``nll_raw``/``ece_raw`` before; ``cv_accuracy`` (out-of-fold on the acquired
labels); the abstention certificate (``certified``, ``threshold``, ``more_labels_needed``) from
``calibration_labels`` labels (the audit stream's when ``audit`` > 0, see :mod:`._audit`; all acquired
labels otherwise) with the test ``coverage`` and ``selective_accuracy`` it gives and those of the
uncorrected threshold (``naive_*``);
the stop signals ``kappa`` (with the previous round's model), ``kappa_window_min`` (the least with any of
the last ``auto_window`` rounds' models) and ``max_uncertainty``, and which rules fire (``stop``);
``seconds``.

A MindSpore learner's latest model is also an ``oms train`` run directory, ``OUT/seed_<S>/model``, with
``calibration.json`` (its temperature and certified abstention threshold, see :func:`calibration_record`),
which ``oms serve`` turns into ``probabilities`` and ``abstain`` outputs.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.active._audit import audit_order, audit_share, extend_audit
from openmindspore.active.abstention import certify, matched_threshold, selective, uncorrected_threshold
from openmindspore.active.calibration import LOG_FLOOR, cross_fit, ece, fit_temperature, nll, temper
from openmindspore.active.config import ActiveConfig
from openmindspore.active.learners import Learner, learner_for
from openmindspore.active.oracle import answers_for
from openmindspore.active.state import SeedState, seed_dir
from openmindspore.active.stopping import RULES, cohen_kappa, fired
from openmindspore.active.strategies import initial_labels, select

__all__ = ["run_seed", "STOP_SET_KEY", "stop_set", "calibration_record"]

STOP_SET_KEY = 7_000_003  # second key of the stop set's generator: default_rng([seed, STOP_SET_KEY])


def stop_set(seed: int, pool: int, size: int) -> np.ndarray:
    """The fixed stop set of a seed: ``size`` pool indices, sorted."""
    rng = np.random.default_rng([int(seed), STOP_SET_KEY])
    return np.sort(rng.choice(pool, size=min(int(size), pool), replace=False))


def _rules(cfg: ActiveConfig, rows: list[dict]) -> dict[str, bool]:
    kw = {"kappa": cfg.kappa, "window": cfg.kappa_window, "max_uncertainty": cfg.max_uncertainty}
    return {r: fired(r, rows, **kw) for r in RULES}  # type: ignore[arg-type]


def _calibration_rows(cfg: ActiveConfig, st: SeedState, order: np.ndarray) -> np.ndarray:
    """Positions in ``st.labeled`` of the labels that certify abstention: the audited prefix of the pool
    when there is an audit stream, every acquired label otherwise."""
    if cfg.audit <= 0:
        return np.arange(len(st.labeled))
    where = {int(i): k for k, i in enumerate(st.labeled)}
    return np.array([where[int(i)] for i in order[: st.audit_pos] if int(i) in where], dtype=np.int64)


def _evaluate(
    cfg: ActiveConfig, learner: Learner, ds: Any, st: SeedState, stops: np.ndarray, order: np.ndarray
) -> dict[str, Any]:
    t0 = time.perf_counter()
    idx, y = np.asarray(st.labeled, dtype=np.int64), np.asarray(st.labels, dtype=np.int64)
    learner.fit(idx, y)
    p_test, y_test = learner.proba(ds.x_test), np.asarray(ds.y_test)
    if cfg.folds:
        oof = cross_fit(learner, ds.x_train, idx, y, cfg.folds, np.random.default_rng([st.seed, st.round, 1]))
        cal = _calibration_rows(cfg, st, order)
    else:  # no cross-fitting (an expensive learner): no temperature, nothing certified
        oof, cal = np.zeros((len(idx), learner.num_classes)), np.zeros(0, dtype=np.int64)
    t = fit_temperature(oof, y) if cfg.folds else 1.0
    oof_c, p_cal = temper(oof, t), temper(p_test, t)
    correct = p_cal.argmax(axis=1) == y_test
    cal_conf, cal_ok = oof_c[cal].max(axis=1), oof_c[cal].argmax(axis=1) == y[cal]
    cert = certify(cal_conf, cal_ok, cfg.target_accuracy, cfg.delta, cfg.certify)
    if not cfg.folds:
        cert.more_labels_needed = None
    p_pool = learner.proba(ds.x_train)
    unl = np.setdiff1d(np.arange(len(ds.x_train)), idx)
    pool_conf = temper(p_pool, t).max(axis=1)
    # the certified models are the cross-fitted ones: the final model predicts on the same share of the pool
    thr = matched_threshold(cal_conf, cert.threshold, pool_conf)
    cov, sel = selective(p_cal.max(axis=1), correct, thr)
    naive = matched_threshold(cal_conf, uncorrected_threshold(cal_conf, cal_ok, cfg.target_accuracy), pool_conf)
    ncov, nsel = selective(p_cal.max(axis=1), correct, naive)
    pred = p_pool[stops].argmax(axis=1)
    row: dict[str, Any] = {
        "seed": st.seed,
        "round": st.round,
        "labels": len(idx),
        "accuracy": float(correct.mean()),
        "nll_raw": nll(p_test, y_test),
        "nll": nll(p_cal, y_test),
        "ece_raw": ece(p_test, y_test),
        "ece": ece(p_cal, y_test),
        "temperature": t,
        "cv_accuracy": float((oof.argmax(axis=1) == y).mean()) if cfg.folds else None,
        "calibration_labels": len(cal),
        "certified": cert.certified,
        "threshold": thr,
        "calibration_coverage": cert.calib_coverage,
        "more_labels_needed": cert.more_labels_needed,
        "coverage": cov,
        "selective_accuracy": sel,
        "naive_threshold": naive,
        "naive_coverage": ncov,
        "naive_selective_accuracy": nsel,
        "kappa": cohen_kappa(np.asarray(st.stop_preds[-1]), pred) if st.stop_preds else None,
        "kappa_window_min": min(cohen_kappa(np.asarray(q), pred) for q in st.stop_preds)
        if len(st.stop_preds) >= cfg.auto_window
        else None,
        "max_uncertainty": float(1.0 - pool_conf[unl].min()) if len(unl) else 0.0,
    }
    st.stop_preds = [*st.stop_preds, pred.tolist()][-cfg.auto_window :]
    st.final = {
        "y": y_test.tolist(),
        "conf_raw": p_test.max(axis=1).round(6).tolist(),
        "conf": p_cal.max(axis=1).round(6).tolist(),
        "pred": p_cal.argmax(axis=1).tolist(),
        "certificate": cert.to_dict(),
    }
    row["stop"] = _rules(cfg, [*st.rows, row])
    row["seconds"] = round(time.perf_counter() - t0, 4)
    return row


def calibration_record(cfg: ActiveConfig, row: dict[str, Any]) -> dict[str, Any]:
    """What a served model needs to say what it knows: probabilities ``softmax(max(log_softmax(logits),
    log_floor) / temperature)`` and ``abstain`` = top probability < ``threshold`` (always, when the
    target could not be certified: ``threshold`` null)."""
    return {
        "temperature": row["temperature"],
        "log_floor": float(LOG_FLOOR),
        "threshold": row["threshold"] if row["certified"] else None,
        "certified": bool(row["certified"]),
        "target_accuracy": cfg.target_accuracy,
        "delta": cfg.delta,
        "method": cfg.certify,
        "calibration_labels": row["calibration_labels"],
        "labels": row["labels"],
        "seed": row["seed"],
        "round": row["round"],
        "test_accuracy": row["accuracy"],
        "test_coverage": row["coverage"],
        "test_selective_accuracy": row["selective_accuracy"],
    }


def _full_pool_accuracy(learner: Learner, ds: Any) -> float:
    m = learner.fresh()
    m.fit(np.arange(len(ds.x_train)), np.asarray(ds.y_train))
    return float((m.proba(ds.x_test).argmax(axis=1) == np.asarray(ds.y_test)).mean())


def run_seed(job: dict[str, Any], on_round: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run (or resume) one seed until it is done or waits for answers. ``job``: ``config`` (an
    :class:`ActiveConfig` as a dict), ``out``, ``seed``, optional ``kill_at`` (SIGKILL this process
    after choosing round ``kill_at``'s queries, before saving: the crash the resume test needs).
    Returns ``{"seed", "status", "labels", "rounds"}``."""
    from openmindspore.data import load_dataset

    cfg, out, seed = ActiveConfig(**job["config"]), Path(job["out"]), int(job["seed"])
    ds = load_dataset(cfg.dataset)
    learner = learner_for(cfg, ds, seed, job.get("model_spec"), keep_runs=True, workdir=seed_dir(out, seed))
    try:
        return _run(cfg, out, seed, ds, learner, job, on_round)
    finally:
        close = getattr(learner, "close", None)
        if close is not None:
            close()


def _run(
    cfg: ActiveConfig,
    out: Path,
    seed: int,
    ds: Any,
    learner: Learner,
    job: dict[str, Any],
    on_round: Callable[[dict], None] | None,
) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    stops = stop_set(seed, len(ds.x_train), cfg.stop_set)
    order = audit_order(seed, len(ds.x_train))
    st = SeedState.load(out, seed) or SeedState(seed=seed)
    export = getattr(learner, "export", None)
    with threadpool_limits(1):
        if st.full_pool_accuracy is None:
            st.full_pool_accuracy = _full_pool_accuracy(learner, ds)
        if not st.labeled and not st.pending and st.status == "running":
            if cfg.audit > 0 and cfg.init == "random":  # the first random labels start the audit stream
                st.pending, st.audit_pos = order[: cfg.initial].tolist(), cfg.initial
            else:
                rng = np.random.default_rng([seed, 0])
                st.pending = initial_labels(cfg.init, ds.x_train, cfg.initial, rng).tolist()
            st.save(out)
        while st.status != "done" and st.pending:
            got = answers_for(out, cfg.oracle, st.pending, ds.y_train)
            if got is None:
                st.status = "waiting"
                st.save(out)
                break
            st.labeled += st.pending
            st.labels += got
            st.pending, st.status = [], "running"
            row = _evaluate(cfg, learner, ds, st, stops, order)
            if export is not None:
                export(seed_dir(out, seed) / "model", calibration_record(cfg, row))
            st.rows.append(row)
            if on_round is not None:
                on_round(row)
            left = cfg.budget - len(st.labeled)
            rule = cfg.stop if cfg.stop != "none" and row["stop"][cfg.stop] else None
            if left <= 0 or rule is not None or len(st.labeled) >= len(ds.x_train):
                st.status, st.stopped_by = "done", rule or "budget"
            else:
                st.round += 1
                b = min(cfg.batch, left)
                audited, st.audit_pos = extend_audit(order, st.audit_pos, set(st.labeled), audit_share(cfg.audit, b))
                rng = np.random.default_rng([seed, st.round])
                chosen = select(
                    cfg.strategy,
                    learner,
                    ds.x_train,
                    np.asarray(st.labeled + audited),
                    b - len(audited),
                    rng,
                    cfg.mc_samples,
                )
                st.pending = audited + chosen.tolist()
                if job.get("kill_at") is not None and st.round == int(job["kill_at"]):
                    os.kill(os.getpid(), signal.SIGKILL)
            st.save(out)
    return {"seed": seed, "status": st.status, "labels": len(st.labeled), "rounds": len(st.rows)}
