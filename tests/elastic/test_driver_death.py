"""Nothing lost when the driver dies: a real ``kill -9`` of ``oms train`` (2 workers, the default snapshot
holder) and ``oms train --resume``, against one uninterrupted run; the holder killed while training goes
on, then killed together with the driver; and no shared memory of a run left behind after it completed
or was killed (after it failed: test_elastic.py). Steps are 1-based."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from oms_testing import ROOT, kill_session, oms_command, run_oms
from openmindspore.elastic.store._holder_main import pid_alive
from openmindspore.elastic.store.holder import find_holder, read_info, shm_prefix
from openmindspore.elastic.store.resume import last_logged_step

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

STEPS = 200  # a step takes ~8 ms here: long enough that the test's 0.1 s polls act well before the run's end
CONFIG = f"""\
dataset: digits
model: {{name: mlp, hidden: [48]}}
optimizer: {{name: adam, lr: 0.01}}
batch_size: 32
steps: {STEPS}
seed: 5
log_every: 1
checkpoint_every: 10
"""
ARGS = ("--workers", "2", "--spares", "0", "--snapshot-every", "1")  # no worker dies here: no spare needed


def _cfg(tmp: Path) -> Path:
    p = tmp / "cfg.yaml"
    p.write_text(CONFIG)
    return p


def _no_shm(run: Path) -> bool:
    return not glob.glob(glob.escape(shm_prefix(run)) + "*")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("driver_death")
    proc = run_oms("train", str(_cfg(tmp)), "--out", str(tmp / "ref"), "--json", *ARGS, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads(proc.stdout)
    assert s["snapshot_store"]["kind"] == "holder" and s["snapshot_store"]["restarts"] == 0
    assert _no_shm(tmp / "ref") and not (tmp / "ref" / "holder.json").exists()  # a completed run: nothing left
    return s


def _start(tmp: Path, name: str) -> tuple[subprocess.Popen, Path]:
    out = tmp / name
    err = open(tmp / f"{name}.stderr", "w")  # noqa: SIM115 - closed with the process
    p = subprocess.Popen(
        oms_command("train", str(_cfg(tmp)), "--out", str(out), "--quiet", *ARGS),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=err,
        start_new_session=True,
        env=dict(os.environ, GLOG_v="3"),
    )
    return p, out


def _wait_step(p: subprocess.Popen, out: Path, step: int, checkpoint: bool = False) -> None:
    """Until the run logged ``step`` (and with ``checkpoint``, wrote a disk checkpoint: it is written on a
    driver thread after the step, so a kill right after the step may precede it)."""

    def reached() -> bool:
        return last_logged_step(out) >= step and (not checkpoint or (out / "checkpoints" / "LATEST").is_file())

    deadline = time.time() + 300
    while time.time() < deadline and not reached():
        assert p.poll() is None, "the run ended before it could be killed"
        time.sleep(0.1)
    assert reached() and last_logged_step(out) < STEPS


def _resume(out: Path) -> tuple[dict, str]:
    proc = run_oms("train", "--resume", str(out), "--json", timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), proc.stderr


def test_driver_sigkill_then_resume_loses_no_step_and_is_bitwise(reference, tmp_path):
    p, out = _start(tmp_path, "killed")
    try:
        _wait_step(p, out, 15)
        os.kill(p.pid, signal.SIGSTOP)  # the driver stops here; the snapshot it asked for still lands
        last = last_logged_step(out)
        holder = find_holder(out)
        assert holder is not None
        deadline = time.time() + 30
        while time.time() < deadline and max(map(int, holder.request("list")["entries"]), default=0) < last:
            time.sleep(0.05)
        os.kill(p.pid, signal.SIGKILL)  # kill -9 of `oms train`
        p.wait(timeout=30)
    finally:
        kill_session(p.pid)  # its workers and Ray go with it; the holder (its own session) stays
    assert pid_alive(holder.pid) and 15 <= last < STEPS
    # a worker may have sent the next step's snapshot before the driver stopped and logged it: resuming
    # from that one (newer than the last logged step) loses nothing either
    held = max(map(int, holder.request("list")["entries"]))
    assert last <= held < STEPS
    s, err = _resume(out)
    assert s["resume"] == {"source": "snapshot", "from_step": held, "steps_lost": 0, "store": "holder"}
    assert f"in-memory snapshot of step {held}" in err
    assert s["steps"] == STEPS and s["params_sha256"] == reference["params_sha256"]
    assert s["samples_seen"] == reference["samples_seen"] and s["snapshot_store"]["attached"]
    assert not pid_alive(holder.pid) and _no_shm(out) and not (out / "holder.json").exists()


def test_holder_killed_then_holder_and_driver_killed(reference, tmp_path):
    p, out = _start(tmp_path, "holder")
    try:
        _wait_step(p, out, 5)
        first = read_info(out)["pid"]
        os.kill(first, signal.SIGKILL)  # the holder dies; training goes on with a new one
        deadline = time.time() + 120
        while time.time() < deadline and read_info(out)["pid"] == first:
            time.sleep(0.1)
        second = read_info(out)["pid"]
        assert second != first
        _wait_step(p, out, max(15, last_logged_step(out) + 3), checkpoint=True)
        os.kill(second, signal.SIGKILL)  # now the holder and the driver together
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        kill_session(p.pid)
    killed_run = (tmp_path / "holder.stderr").read_text()
    assert f"snapshot holder (pid {first}) is gone; started a new one (pid {second})" in killed_run
    ckpt = int((out / "checkpoints" / "LATEST").read_text().split("_")[1])
    # the holder spills a snapshot to the run directory when it evicts one (at most every 10 s): on a slow
    # machine the second holder may have spilled one as new as the checkpoint or newer, and that one is used
    # (resume prefers a verified snapshot to a checkpoint of the same step: resume.py's docstring)
    spilled = max((int(m.stem.split("_")[1]) for m in (out / "snapshots").glob("step_*.json")), default=-1)
    s, err = _resume(out)
    assert ckpt >= 10 and f"snapshot holder (pid {second}) is gone" in err
    if spilled >= ckpt:
        assert s["resume"]["source"] == "snapshot" and s["resume"]["store"] == "spilled"
        assert s["resume"]["from_step"] == spilled and f"spilled snapshot of step {spilled}" in err
    else:
        assert s["resume"]["source"] == "checkpoint" and s["resume"]["from_step"] == ckpt
        assert "disk checkpoint" in err
    assert s["steps"] == STEPS and s["params_sha256"] == reference["params_sha256"]
    assert _no_shm(out) and not (out / "holder.json").exists()


# a failed run leaving no shared memory: test_elastic.py::test_too_many_failures_stop_cleanly_with_a_checkpoint
# (the same --min-workers 2 --max-restarts 0 failure, asserted there so it runs once)
