"""The snapshot-store contract, the same test for every backend (``holder``, ``ray``, ``yrds`` when
installed), and the holder's lifetime: found again after its driver dies, gone with its run directory,
gone after a driver that never comes back (its newest snapshot spilled to disk first), and no shared
memory left behind. Real processes, real files in /dev/shm, a real Ray engine; no training."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openmindspore.data.sampler import SamplerState
from openmindspore.elastic.store.holder import find_holder, shm_prefix
from openmindspore.elastic.store.holder_store import HolderStore
from openmindspore.train.checkpoint import RunDir
from openmindspore.train.state import TrainState

Put = Callable[[int, TrainState], None]


def _state(step: int) -> TrainState:
    rng = np.random.default_rng(step)
    return TrainState(
        params={"w": rng.standard_normal((64, 32)).astype(np.float32), "b": np.zeros(32, np.float32)},
        opt_state={"m.w": rng.standard_normal((64, 32)).astype(np.float32), "t": np.asarray([step], np.int64)},
        step=step,
        sampler=SamplerState(seed=1, epoch=step // 5, offset=step % 5 * 8),
        seed=1,
        samples_seen=8 * step,
        arrays={"sal": rng.random((4, 3)).astype(np.float16)},
    )


def _shm(run_dir: Path) -> list[str]:
    return glob.glob(glob.escape(shm_prefix(run_dir)) + "*")


def _run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text("dataset: digits\n")  # a run directory
    return d


def _echo_class() -> type:
    """Defined in a function, so the engine ships the class by value."""

    class Echo:
        def snapshot(self, state: Any) -> Any:  # a worker's snapshot: its TrainState into the object store
            return state

    return Echo


@pytest.fixture(scope="module")
def ray_engine() -> Iterator[Any]:
    from openmindspore.engine import get_engine

    eng = get_engine("ray")
    eng.start(None, num_cpus=1)
    try:
        yield eng
    finally:
        eng.shutdown()


def _holder(tmp_path: Path) -> tuple[Any, Put, Callable[[], None]]:
    run = _run_dir(tmp_path)
    store = HolderStore(run, engine=None)

    def put(step: int, state: TrainState) -> None:
        _, (s, target) = store.request(step)
        store.record(step, target.write(s, state))  # what a worker does, here in-process

    def finish() -> None:
        store.close(completed=True)
        assert not _shm(run) and not (run / "holder.json").exists() and not store.alive()

    return store, put, finish


def _ray(request: pytest.FixtureRequest) -> tuple[Any, Put, Callable[[], None]]:
    from openmindspore.elastic.store.ray_store import RayStore

    eng = request.getfixturevalue("ray_engine")
    actor = eng.spawn(_echo_class(), name="echo")
    store = RayStore(eng)

    def put(step: int, state: TrainState) -> None:
        store.record(step, eng.call(actor, "snapshot", state))

    return store, put, lambda: (store.close(True), eng.kill(actor))  # type: ignore[func-returns-value]


def _yrds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Put, Callable[[], None]]:
    """A local openYuanrong data-system worker (its own metastore, no etcd), started with its ``dscli``."""
    pytest.importorskip("yr.datasystem", reason="openyuanrong-datasystem is not installed (extra: yrds)")
    from oms_testing import free_port
    from openmindspore.elastic.store.yrds import YrdsStore

    dscli = shutil.which("dscli") or str(Path(sys.executable).with_name("dscli"))
    address = f"127.0.0.1:{free_port()}"
    start = [dscli, "start", "-t", "120", "-d", str(tmp_path / "yrds"), "-w", "--worker_address", address]
    start += ["--metastore_address", f"127.0.0.1:{free_port()}", "--start_metastore_service", "true"]
    subprocess.run([*start, "--shared_memory_size_mb", "256"], check=True, timeout=180, capture_output=True)
    monkeypatch.setenv("OMS_YRDS_ADDRESS", address)
    store = YrdsStore(_run_dir(tmp_path), engine=None)

    def put(step: int, state: TrainState) -> None:
        _, (s, target) = store.request(step)
        store.record(step, target.write(s, state))

    def finish() -> None:
        store.close(completed=True)
        left = store.client.exist([f"oms-snap-{store.rid}-{s:08d}" for s in range(1, 5)])
        subprocess.run([dscli, "stop", "--worker_address", address], timeout=120, capture_output=True)
        assert not any(left)

    return store, put, finish


@pytest.fixture(params=["holder", "ray", "yrds"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, Put]]:
    if request.param == "holder":
        store, put, finish = _holder(tmp_path)
    elif request.param == "ray":
        store, put, finish = _ray(request)
    else:
        store, put, finish = _yrds(tmp_path, monkeypatch)
    yield store, put
    finish()


def _same(a: TrainState | None, b: TrainState) -> bool:
    return a is not None and a.to_bytes() == b.to_bytes()


def test_store_contract(backend):
    store, put = backend
    assert store.latest() is None and store.steps() == []
    states = {s: _state(s) for s in (1, 2, 3)}
    for s, st in states.items():
        put(s, st)
    assert store.steps() == [2, 3]  # the newest `keep` (2)
    step, newest = store.latest()
    assert step == 3 and _same(newest, states[3])
    assert store.latest(newer_than=3) is None
    assert _same(store.get(2), states[2]) and store.get(1) is None
    read2 = store.reader(2)
    put(4, _state(4))  # the store moves on; a reader taken before still reads its step (a checkpoint)
    assert _same(read2(10.0), states[2]) or not store.capabilities.outlives_driver
    store.forget_after(3)  # rolled back to step 3
    assert store.latest()[0] == 3 and store.steps() == [3]
    store.drop(3)
    assert store.latest() is None
    assert store.check() is None and store.describe()["kind"] == store.name


def test_an_evicted_snapshots_file_is_written_into_again(tmp_path):
    """Overwriting memory tmpfs has allocated costs ~1/3 of a new file: the holder keeps one evicted file
    (``<prefix>free``) and the next snapshot overwrites it in place, every byte, a longer one truncated."""
    from dataclasses import replace

    from openmindspore.elastic.store.blob import read_state, write_state
    from openmindspore.elastic.store.holder import free_name

    free = free_name(str(tmp_path / "snap-"))
    write_state(replace(_state(9), params={"w": np.ones((512, 64), np.float32)}), free)
    sha, nbytes = write_state(_state(1), tmp_path / "snap-1", reuse=free)
    assert not os.path.exists(free) and os.path.getsize(tmp_path / "snap-1") == nbytes
    assert _same(read_state(tmp_path / "snap-1", sha), _state(1))
    sha, _ = write_state(_state(2), tmp_path / "snap-2", reuse=free)  # none to reuse: a new file
    assert _same(read_state(tmp_path / "snap-2", sha), _state(2))

    store, put, finish = _holder(tmp_path)
    free = free_name(store.client.info["prefix"])
    for s in range(1, 6):  # the holder keeps 3: steps 1 (spilled first) and 2 are evicted, one file kept
        put(s, _state(s))
    reused = os.stat(free).st_ino
    put(6, _state(6))  # written into step 2's old file; step 3's becomes the free one
    assert os.stat(store.client.request("get", step=6)["path"]).st_ino == reused and os.path.exists(free)
    assert store.steps() == [5, 6] and _same(store.get(6), _state(6)) and _same(store.get(5), _state(5))
    finish()  # the free file goes with the rest


def _slow_class() -> type:
    class Slow:
        def snapshot(self, state: Any) -> Any:  # a worker too slow to finish its snapshot before it dies
            time.sleep(60)
            return state

    return Slow


@pytest.mark.parametrize("kind", ["holder", "ray"])
def test_a_stored_snapshot_is_kept_while_every_newer_one_is_still_being_written(kind, ray_engine, tmp_path):
    """Both ranks die while the snapshots of the last two steps are still being written: the newest stored
    one (step 1) must still be there, or the run would have nothing to recover from."""
    from openmindspore.elastic.store.ray_store import RayStore

    eng = ray_engine
    echo, slow = eng.spawn(_echo_class(), name="echo2"), eng.spawn(_slow_class(), name="slow")
    store: Any = HolderStore(_run_dir(tmp_path), engine=eng) if kind == "holder" else RayStore(eng)

    def stored(step: int) -> None:  # a snapshot that is written (a finished worker's answer)
        if kind == "holder":
            _, (s, target) = store.request(step)
            store.record(step, target.write(s, _state(step)))
        else:
            store.record(step, eng.call(echo, "snapshot", _state(step)))
            eng.wait([store.refs[step]], timeout=30)

    try:
        stored(1)
        store.record(2, eng.call(slow, "snapshot", _state(2)))
        store.record(3, eng.call(slow, "snapshot", _state(3)))
        assert store.steps() == [1, 2, 3]  # step 1 stays beside the two being written
        eng.kill(slow)  # the writers die
        step, state = store.latest(timeout=10)
        assert step == 1 and _same(state, _state(1))
        for s in (4, 5, 6):
            stored(s)
        assert store.steps() == [5, 6]  # once newer ones are stored, the old one goes
    finally:
        store.close(completed=True)
        eng.kill(echo)


def test_holder_verifies_and_replaces_a_dead_holder(tmp_path):
    store, put, finish = _holder(tmp_path)
    put(1, _state(1))
    put(2, _state(2))
    with open(shm_prefix(tmp_path / "run") + "00000002", "r+b") as f:  # flip a byte of the newest
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    step, state = store.latest()
    assert step == 1 and _same(state, _state(1))  # the corrupted one is skipped
    old = store.client.pid
    os.kill(old, signal.SIGKILL)
    store.proc.wait(10)
    msg = store.check()
    assert msg and str(old) in msg and store.restarts == 1 and store.client.pid != old
    assert store.latest() is None and _shm(tmp_path / "run") == []  # its memory is gone, and freed
    put(3, _state(3))
    assert store.latest()[0] == 3
    finish()


def test_full_shared_memory_falls_back_to_the_run_directory(tmp_path):
    from openmindspore.elastic.store.holder import HolderTarget, fallback_prefix

    store, _, finish = _holder(tmp_path)
    t = store.client.target()
    full = HolderTarget(t.host, t.port, str(tmp_path / "no-such-dir" / "x-"), t.fallback)  # writing fails there
    store.record(1, full.write(1, _state(1)))
    run = tmp_path / "run"
    assert glob.glob(glob.escape(fallback_prefix(run)) + "*") and _same(store.get(1), _state(1))
    finish()
    assert not glob.glob(glob.escape(fallback_prefix(run)) + "*")


DRIVER = """
import os, sys
sys.path[:0] = {paths!r}
from test_snapshot_store import _state
from openmindspore.elastic.store.holder_store import HolderStore
store = HolderStore({run!r})
for s in (4, 5, 6):
    _, (step, target) = store.request(s)
    target.write(step, _state(s))
print(store.client.pid, flush=True)
os._exit(0)  # dies without closing its holder
"""


def _dead_driver(run: Path, **env: str) -> int:
    code = DRIVER.format(paths=sys.path[:3] + [str(Path(__file__).parent)], run=str(run))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.split()[-1])


def _gone(pid: int, timeout: float) -> bool:
    from openmindspore.elastic.store._holder_main import pid_alive

    deadline = time.time() + timeout
    while time.time() < deadline and pid_alive(pid):
        time.sleep(0.1)
    return not pid_alive(pid)


def test_holder_outlives_its_driver_and_resume_uses_it(tmp_path):
    from openmindspore.elastic.store.resume import choose_resume

    run = _run_dir(tmp_path)
    RunDir(run).save(_state(2))  # an older disk checkpoint
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in range(1, 7)))
    pid = _dead_driver(run)
    holder = find_holder(run)
    assert holder is not None and holder.pid == pid
    said: list[str] = []
    point = choose_resume(RunDir(run), say=said.append)
    assert point.source == "snapshot" and point.from_step == 6 and point.steps_lost == 0
    assert _same(point.state, _state(6)) and "in-memory snapshot of step 6" in said[0]
    store = HolderStore(run)  # the resumed driver attaches to the same holder
    assert store.attached and store.client.pid == pid and store.steps()[-1] == 6
    store.close(completed=True)
    assert _gone(pid, 10) and _shm(run) == [] and not (run / "snapshots").exists()


def test_holder_and_driver_killed_resume_from_checkpoint(tmp_path):
    from openmindspore.elastic.store.resume import choose_resume

    run = _run_dir(tmp_path)
    RunDir(run).save(_state(2))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in range(1, 7)))
    pid = _dead_driver(run)
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid, 10) and _shm(run)  # the holder's memory, orphaned
    said: list[str] = []
    point = choose_resume(RunDir(run), say=said.append)
    assert point.source == "checkpoint" and point.from_step == 2 and point.steps_lost == 4
    assert f"holder (pid {pid}) is gone" in said[0] and _shm(run) == []


def test_stale_holders_clean_up_and_exit(tmp_path):
    # the run directory disappears: the holder frees its memory and exits
    run = _run_dir(tmp_path / "a")
    pid = _dead_driver(run)
    shutil.rmtree(run)
    assert _gone(pid, 15) and _shm(run) == []
    # the driver is gone and nobody resumes: the newest snapshot is spilled to disk, the memory freed
    run = _run_dir(tmp_path / "b")
    pid = _dead_driver(run, OMS_HOLDER_LINGER_S="1")
    assert _gone(pid, 20) and _shm(run) == [] and not (run / "holder.json").exists()
    from openmindspore.elastic.store.resume import choose_resume

    point = choose_resume(RunDir(run), say=lambda m: None)
    assert point.where == "spilled" and _same(point.state, _state(6))
    RunDir(run).save(_state(6))  # a checkpoint of the same step: the verified snapshot is still preferred
    point = choose_resume(RunDir(run), say=lambda m: None)
    assert point.where == "spilled" and point.from_step == 6
