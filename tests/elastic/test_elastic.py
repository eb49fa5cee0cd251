"""Elastic training with real processes and real signals on an embedded Ray cluster.

One uninterrupted 2-worker run (default backend: shared memory) is the reference; every fault scenario
must reproduce it: bitwise at the same world size (also with MindSpore's MCCL backend), within 1e-5
relative after a rescale. Steps are 1-based ("during step 3").
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from oms_testing import ROOT, kill_session, oms_command, run_oms

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

CONFIG = """\
dataset: digits
model:
  name: cnn
  layers:
    - {type: conv, channels: 8, kernel: 3}
    - {type: relu}
    - {type: maxpool, kernel: 2}
    - {type: dropout, rate: 0.1}
    - {type: dense, units: 32}
    - {type: relu}
optimizer: {name: adam, lr: 0.01}
batch_size: 32
steps: 12
seed: 3
log_every: 1
checkpoint_every: 3
"""


def _train(tmp: Path, name: str, *args: str, expect_ok: bool = True) -> tuple[dict, subprocess.CompletedProcess]:
    cfg = tmp / "cfg.yaml"
    cfg.write_text(CONFIG)
    out = tmp / name
    proc = run_oms("train", str(cfg), "--out", str(out), "--json", *args, timeout=400)
    if expect_ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout), proc
    return {}, proc


def _params(run_dir: Path) -> dict[str, np.ndarray]:
    from openmindspore.train import RunDir

    return RunDir(run_dir).load_latest().params


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("elastic")
    summary, _ = _train(tmp, "ref", "--workers", "2", "--spares", "0")  # fault-free: no spare process needed
    return tmp, summary


def _assert_exactly_once(s: dict) -> None:
    assert s["duplicate_samples"] == 0 and s["missed_samples"] == 0
    assert s["samples_seen"] == 12 * 32


def test_uninterrupted_two_workers(reference):
    _, s = reference
    assert s["status"] == "completed" and s["steps"] == 12 and s["world_size"] == 2
    assert s["recoveries"] == []
    _assert_exactly_once(s)
    assert 0 <= s["snapshot_overhead"] < 0.5
    # a small state: the workers' estimate starts the period at 1; the driver then follows the measured cost, a
    # timing (CI once read 4 on a slow moment), so only its range is asserted here: the rule is unit-tested in
    # test_comm.py::test_snapshot_period_auto_keeps_the_state_copy_within_budget
    assert s["snapshot_every"] >= 1 and 0 < s["snapshot_copy_s"] < 1
    assert s["eval"]["accuracy"] > 0.5  # it learns
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:  # one thread per worker: each active worker pinned to its own core
        assert s["worker_cores"] == [[cores[0]], [cores[1]]], s["worker_cores"]
    assert set(s["phases_s"]) == {"compute", "update", "driver"} and s["phases_s"]["compute"] > 0
    assert s["late_compiles"] == 0


def test_pin_to_cores_pins_every_thread_and_unpins_when_the_group_does_not_fit():
    """In a child process (pinning is per process): rank 1 of 2 with 1 thread -> its own core, every
    thread; a group that does not fit the node -> all cores again."""
    code = (
        "import os, threading, json\n"
        "from openmindspore.elastic.worker import pin_to_cores\n"
        "cores = sorted(os.sched_getaffinity(0))\n"
        "t = threading.Thread(target=threading.Event().wait, args=(5,), daemon=True); t.start()\n"
        "def affs():\n"
        "    return sorted({tuple(sorted(os.sched_getaffinity(int(x)))) for x in os.listdir('/proc/self/task')})\n"
        "out = {'cores': cores, 'pinned': pin_to_cores(1, 2, 1, cores), 'after_pin': affs()}\n"
        "out['unpinned'] = pin_to_cores(1, len(cores) + 1, 1, cores); out['after_unpin'] = affs()\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    cores = out["cores"]
    if len(cores) < 2:
        pytest.skip("needs 2 cores")
    assert out["pinned"] == [cores[1]] and out["after_pin"] == [[cores[1]]]
    assert out["unpinned"] is None and out["after_unpin"] == [cores]


def test_crash_hang_preempt_recover_bitwise(reference):
    tmp, ref = reference
    s, _ = _train(
        tmp,
        "faults",
        "--workers",
        "2",
        "--kill-worker-at",
        "3:1",
        "--hang-worker-at",
        "6:0",
        "--preempt-worker-at",
        "9:1",
        "--hang-timeout",
        "6",
    )
    kinds = [r["kind"] for r in s["recoveries"]]
    assert kinds == ["crash", "hang", "preempt"], s["recoveries"]
    assert [r["failed_ranks"] for r in s["recoveries"]] == [[1], [0], [1]]
    for r in s["recoveries"]:
        assert r["steps_lost"] == 0 and r["world_before"] == r["world_after"] == 2 and "interrupted" not in r
        assert r["detect_s"] >= 0 and r["recover_s"] >= r["detect_s"]
        # shm rebuilds in the live survivor: one process kept, one replaced
        assert r["comm"] == "shm" and r["survivors_kept"] == 1 and not r["standby_group"], r
    assert s["recoveries"][2]["resumed_from_step"] == 9  # preemption: no rollback
    _assert_exactly_once(s)
    assert s["params_sha256"] == ref["params_sha256"]


def test_sparse_snapshots_keep_checkpoints_and_single_failures_lossless(reference):
    # snapshots every 5 steps, checkpoints every 3: a checkpoint takes its own snapshot when due; a crash
    # between snapshots still loses nothing (the survivor exports its own state)
    tmp, ref = reference
    s, _ = _train(tmp, "sparse", "--workers", "2", "--spares", "1", "--snapshot-every", "5", "--kill-worker-at", "7:1")
    (r,) = s["recoveries"]
    assert r["kind"] == "crash" and r["steps_lost"] == 0 and r["survivors_kept"] == 1, r
    ckpts = sorted(int(p.stem.split("_")[1]) for p in (tmp / "sparse" / "checkpoints").glob("step_*.safetensors"))
    # checkpoints at due steps only (every 3) though snapshots come every 5, and the final one; a checkpoint due
    # while the previous one is still being written is skipped, not queued, so which of 6 and 9 are on disk
    # depends on timing (CI once had 3, 9, 12). A due checkpoint whose snapshot could not be read (its worker
    # killed while the write still waited for it: CI at load 4 once) is owed and written at a later step, with
    # a warning naming the step it replaces (CI then had 7, 9, 12)
    log = (tmp / "sparse" / "train.log").read_text()
    owed = [int(m) for m in re.findall(r"checkpoint of step (\d+) not written", log)]
    off = [c for c in ckpts if c not in {3, 6, 9, 12}]
    assert ckpts[-1] == 12 and len(ckpts) >= 2 and all(any(k < c for k in owed) for c in off), (ckpts, owed)
    _assert_exactly_once(s)
    assert s["params_sha256"] == ref["params_sha256"]


def test_mccl_backend_recovers_bitwise_equal_to_shm(reference):
    """MindSpore's collectives: the crashed group is replaced by the pre-connected standby group (no
    survivor kept), and the result is bitwise that of the shared-memory reference."""
    tmp, ref = reference
    s, _ = _train(tmp, "mccl", "--workers", "2", "--comm", "mccl", "--kill-worker-at", "3:1")
    assert s["comm_s"]["backend"] == "mccl" and ref["comm_s"]["backend"] == "shm"
    (r,) = s["recoveries"]
    assert r["kind"] == "crash" and r["survivors_kept"] == 0 and r["steps_lost"] == 0, r
    _assert_exactly_once(s)
    assert s["params_sha256"] == ref["params_sha256"]


# heavy "full": a full (unsharded) update through a crash, bitwise, is also [overlap]'s run (shm, a survivor kept)
# and test_mccl_backend_recovers_bitwise_equal_to_shm's (MCCL updates every parameter on every worker)
@pytest.mark.parametrize("mode", ["overlap", pytest.param("full", marks=pytest.mark.heavy)])
def test_unsharded_updates_recover_bitwise_equal(reference, mode):
    """The reference's optimizer is sharded (ZeRO-1, the shm default). Every worker updating all parameters
    (--no-shard-optimizer) and --overlap (updates computed while later buckets are summed; 4 KiB buckets
    so the digits CNN's gradient is several) give the same parameters, also through a crash."""
    tmp, ref = reference
    assert ref["elastic"]["shard_optimizer"]
    extra = ["--overlap", "--bucket-mb", "0.004"] if mode == "overlap" else ["--no-shard-optimizer"]
    s, _ = _train(tmp, mode, "--workers", "2", "--spares", "1", *extra, "--kill-worker-at", "5:0")
    assert s["elastic"]["overlap"] == (mode == "overlap") and not s["elastic"]["shard_optimizer"]
    assert [r["kind"] for r in s["recoveries"]] == ["crash"], s["recoveries"]
    assert s["recoveries"][0]["steps_lost"] == 0
    _assert_exactly_once(s)
    assert s["params_sha256"] == ref["params_sha256"]


def test_double_failure_and_failure_during_recovery(reference):
    tmp, ref = reference
    # two ranks die in step 4; the same fault is given twice for rank 0, so it fires again in the
    # replacement group before its first step completes (a failure during recovery)
    s, _ = _train(
        tmp, "double", "--workers", "2", "--kill-worker-at", "4:0", "--kill-worker-at", "4:1", "--kill-worker-at", "4:0"
    )
    rec = s["recoveries"]
    # each injected fault fires exactly once: both ranks in the first group, rank 0 again in the second
    assert len(rec) == 2 and all(r["step"] == 4 and r["kind"] == "crash" for r in rec), rec
    assert 0 in rec[0]["failed_ranks"] and rec[1]["failed_ranks"] == [0], rec
    assert sorted(int(x) for x in (tmp / "double" / "faults_fired.log").read_text().split()) == [0, 1, 2]
    # no survivor: the state comes from the newest stored snapshot; if both die before the previous
    # step's snapshot is stored (a window of milliseconds; longer on a loaded machine), the steps after the
    # newest stored one are redone, exactly once each
    lost = rec[0]["steps_lost"]
    assert lost <= 3 and all(r["steps_lost"] == 0 for r in rec[1:]), rec
    if lost == 0:  # resumed after step 3: rank 0 dies again before the first step completes
        assert rec[0]["interrupted"] and rec[0]["recover_s"] is None, rec
    else:  # resumed earlier: the new group redid the steps up to 3, then rank 0 died again in step 4
        assert rec[0]["resumed_from_step"] == 3 - lost and rec[0]["recover_s"] > 0, rec
    assert rec[1]["recover_s"] > 0
    _assert_exactly_once(s)
    if s["world_size"] == 2 and not s["rescales"]:
        assert s["params_sha256"] == ref["params_sha256"]
    else:
        _assert_close(tmp / "double", tmp / "ref")


def _assert_close(a: Path, b: Path, atol: float = 1e-6) -> None:
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_allclose(pa[k], pb[k], rtol=1e-5, atol=atol, err_msg=k)


# long enough (~15 s of 2-5 ms steps) for a cold-started replacement to come up and join; a small SGD step
# keeps the float32 summation-order differences of 1 vs 2 processes from growing (7e-7 after 3000 steps; 3.6e-6
# once in CI: how many steps run on 1 vs 2 processes depends on when the replacement joins, a timing), so the
# comparison allows 1e-5: a lost or repeated batch moves weights by ~lr x gradient, orders of magnitude more
RESCALE_STEPS = 3000
RESCALE_CONFIG = CONFIG.replace("steps: 12", f"steps: {RESCALE_STEPS}").replace(
    "{name: adam, lr: 0.01}", "{name: sgd, lr: 0.01}"
)


def test_scale_down_then_up_matches_within_tolerance(tmp_path):
    """Lose a worker with no warm spare: shrink to the 1 survivor at once (kept alive: shm), grow back to
    2 in-process when the cold-started replacement is up (a longer run, so it has time to start). Compared
    with one process training the same global batch (SGD keeps float32 summation-order differences from
    being amplified)."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(RESCALE_CONFIG)
    single = run_oms("train", str(cfg), "--out", str(tmp_path / "single"), "--json", timeout=400)
    assert single.returncode == 0, single.stderr[-2000:]
    proc = run_oms(
        "train",
        str(cfg),
        "--out",
        str(tmp_path / "rescale"),
        "--json",
        "--workers",
        "2",
        "--spares",
        "0",
        "--rejoin-wait",
        "0",
        "--kill-worker-at",
        "3:1",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads(proc.stdout)
    rec = s["recoveries"][0]
    assert rec["world_before"] == 2 and rec["world_after"] == 1 and rec["steps_lost"] == 0
    assert rec["survivors_kept"] == 1  # the survivor goes on alone, then the group grows around it
    # the first workers compiled the 1-worker shard shape during their warm-up: the survivor's first step
    # alone compiled nothing
    assert rec["first_step_compiled"] is False
    assert s["rescales"] and s["rescales"][0]["world_before"] == 1 and s["rescales"][0]["world_after"] == 2
    from openmindspore.data import ResumableSampler, load_dataset

    sampler = ResumableSampler(len(load_dataset("digits").x_train), 32, seed=3)
    assert s["world_size"] == 2 and s["samples_seen"] == sum(len(sampler.next_batch()) for _ in range(RESCALE_STEPS))
    assert s["duplicate_samples"] == 0 and s["missed_samples"] == 0  # over many full epochs
    _assert_close(tmp_path / "rescale", tmp_path / "single", atol=1e-5)


def test_too_many_failures_stop_cleanly_with_a_checkpoint(tmp_path):
    _, proc = _train(
        tmp_path,
        "stop",
        "--workers",
        "2",
        "--min-workers",
        "2",
        "--spares",
        "0",
        "--max-restarts",
        "0",
        "--kill-worker-at",
        "5:1",
        expect_ok=False,
    )
    assert proc.returncode == 2
    assert "--min-workers=2" in proc.stderr and "--resume" in proc.stderr and "Traceback" not in proc.stderr
    from openmindspore.train import RunDir

    assert RunDir(tmp_path / "stop").load_latest().step == 4
    # a failed run leaves no shared memory behind: its snapshot holder (the default store) is gone with it
    # (this run is also test_driver_death.py's failed-run case: one run, not two)
    assert _snapshot_store_gone(tmp_path / "stop")


def _snapshot_store_gone(run: Path) -> bool:
    """No shared-memory snapshot of ``run`` left and no snapshot holder recorded for it."""
    import glob

    from openmindspore.elastic.store.holder import shm_prefix

    return not glob.glob(glob.escape(shm_prefix(run)) + "*") and not (run / "holder.json").exists()


def test_driver_killed_then_resume_on_fewer_workers(tmp_path):
    # long enough (steps of a few ms) for the driver to be killed mid-run; SGD with a small step keeps the
    # 2-then-1-process run within float32 noise of one process throughout
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.replace("steps: 12", "steps: 400").replace("{name: adam, lr: 0.01}", "{name: sgd, lr: 0.01}"))
    single = run_oms("train", str(cfg), "--out", str(tmp_path / "single"), "--json", timeout=400)
    assert single.returncode == 0, single.stderr[-2000:]
    out = tmp_path / "driver"
    p = subprocess.Popen(
        oms_command("train", str(cfg), "--out", str(out), "--workers", "2", "--spares", "0", "--quiet"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=dict(os.environ, GLOG_v="3"),
    )
    try:
        deadline = time.time() + 300
        latest = out / "checkpoints" / "LATEST"
        while time.time() < deadline and not (latest.is_file() and latest.read_text() >= "step_00000006"):
            assert p.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
        os.kill(p.pid, signal.SIGKILL)  # the driver dies; its cluster and workers go with it
        p.wait(timeout=30)
    finally:
        kill_session(p.pid)
    step_at_kill = int(latest.read_text().split("_")[1])
    assert 6 <= step_at_kill < 400
    # fault-free: no spare process needed (the default would keep one warm for nothing)
    proc = run_oms("train", "--resume", str(out), "--workers", "1", "--spares", "0", "--json", timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads(proc.stdout)
    assert s["steps"] == 400 and s["world_size"] == 1 and s["samples_seen"] == json.loads(single.stdout)["samples_seen"]
    _assert_close(out, tmp_path / "single")  # checkpoint of 2 workers continued on 1: same maths


def test_bad_elastic_input(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    cases = [
        (["--workers", "3"], "choose workers in [1, 2, 4, 8]"),
        (["--workers", "2", "--min-workers", "3"], "--min-workers=3"),
        (["--workers", "2", "--kill-worker-at", "x:1"], "--kill-worker-at='x:1'"),
        (["--workers", "2", "--kill-worker-at", "3:5"], "a rank < workers=2"),
        (["--workers", "2", "--address", "127.0.0.1:1"], "--address='127.0.0.1:1'"),
        (["--workers", "2", "--comm", "nccl"], "invalid choice: 'nccl'"),
        (["--workers", "2", "--bucket-mb", "0"], "--bucket-mb=0.0"),
        (["--workers", "2", "--threads", "0"], "--threads=0"),
        (["--workers", "2", "--comm", "mccl", "--overlap"], "drop --overlap or use --comm shm"),
    ]
    for args, fragment in cases:
        proc = run_oms("train", str(cfg), "--out", str(tmp_path / "o"), *args, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert fragment in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr[-2000:])
