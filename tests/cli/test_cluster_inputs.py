"""Bad cluster input without a cluster: an unreachable ``--address`` or ``$RAY_ADDRESS`` for every command that
starts Ray, too little ``/dev/shm``, and the pure rules behind them (spares fitted to free CPUs, the shared
memory estimate): one line each, naming what and how to fix, exit 2."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from oms_testing import ROOT, free_port, run_oms
from openmindspore.elastic import ElasticOptions
from openmindspore.elastic.shm_space import SHM_DIR, check_shm_space, shm_bytes_needed
from openmindspore.errors import ConfigError

DIGITS = str(ROOT / "examples" / "digits_mlp.yaml")


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("oms ")]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize(
    "args, via_env",
    [
        (["train", DIGITS, "--max-steps", "1"], True),  # no --workers: RAY_ADDRESS alone makes it a cluster run
        (["search", "--space", "sklearn-classifier", "--dataset", "iris", "--budget", "2", "--workers", "2"], False),
        (["ablate", "--factor", "maxpool", "--repeats", "2", "--steps", "1", "--workers", "2"], True),
        (["serve", "builtin:identity"], True),
    ],
    ids=["train-env", "search-flag", "ablate-env", "serve-env"],
)
def test_unreachable_cluster_is_one_line_naming_where_the_address_came_from(args, via_env, tmp_path: Path):
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    out = [] if args[0] == "serve" else ["--out", str(tmp_path / "out")]
    extra = ["--port", str(free_port())] if args[0] == "serve" else []
    flags = [] if via_env else ["--address", dead]
    proc = run_oms(*args, *out, *extra, *flags, env={"RAY_ADDRESS": dead} if via_env else None, timeout=240)
    line = _one_error_line(proc)
    assert f"{'RAY_ADDRESS' if via_env else '--address'}='{dead}' is invalid" in line
    assert "cannot connect" in line and "start the cluster" in line


def test_explicit_address_wins_over_ray_address(tmp_path: Path):
    dead, other = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    proc = run_oms("train", DIGITS, "--address", dead, "--out", str(tmp_path / "o"), env={"RAY_ADDRESS": other})
    assert f"--address='{dead}' is invalid" in _one_error_line(proc)


def test_too_little_dev_shm_is_one_line_with_the_size_and_the_fix(tmp_path: Path):
    """4 workers with 4 GiB all-reduce pieces need ~40 GiB of shared memory: more than this host's /dev/shm."""
    opts = ElasticOptions(workers=4, bucket_mb=4096).resolve(32)
    if not SHM_DIR.is_dir() or shutil.disk_usage(SHM_DIR).free >= shm_bytes_needed(10_000, 2, opts):
        pytest.skip("/dev/shm is missing or larger than the run needs")
    proc = run_oms("train", DIGITS, "--workers", "4", "--bucket-mb", "4096", "--out", str(tmp_path / "r"))
    line = _one_error_line(proc)
    assert "/dev/shm=" in line and "MiB of shared memory for 4 workers" in line
    assert "docker run --shm-size=" in line and "medium: Memory" in line
    assert not (tmp_path / "r" / "summary.json").exists()


def test_shm_estimate_and_check():
    opts = ElasticOptions(workers=2, bucket_mb=1.0).resolve(32)
    small = shm_bytes_needed(1000, 2, opts)
    assert small == 2 * (2 * ((1 << 20) + (1 << 19)) + 4 * 1000 * 2 * 4)
    unsharded = ElasticOptions(workers=2, shard_optimizer=False).resolve(32)
    assert shm_bytes_needed(1000, 2, unsharded) == 2 * 2 * ((1 << 20) + (1 << 19))
    if not SHM_DIR.is_dir():
        pytest.skip("no /dev/shm")
    check_shm_space(1000, 2, opts)  # fits
    free = shutil.disk_usage(SHM_DIR).free
    with pytest.raises(ConfigError, match=r"at least \d+ MiB of shared memory for 2 workers .*--shm-size="):
        check_shm_space(free // 16 + 1, 2, opts)  # 2 x (4 bytes x 2 slots x 4 copies) per parameter > free
    check_shm_space(free, 2, ElasticOptions(workers=2, comm="mccl").resolve(32))  # no shared memory with mccl


def test_default_spares_fit_the_free_cpus_explicit_ones_must_fit():
    auto = ElasticOptions(workers=2).resolve(32)
    assert auto.spares == 2 and auto.spares_auto
    assert auto.fit_spares(8, 8, 32) is auto  # fits: unchanged
    fitted = auto.fit_spares(3, 4, 32)
    assert fitted.spares == 1 and fitted.spares_auto and fitted.workers == 2
    assert auto.fit_spares(2, 2, 32).spares == 0
    with pytest.raises(ConfigError, match=r"--workers=2 .*2 workers need 2 CPUs, 1 of 4 CPUs free \(other jobs hold"):
        auto.fit_spares(1, 4, 32)
    with pytest.raises(ConfigError, match=r"--workers=4 .*choose workers in \[1, 2\]"):
        ElasticOptions(workers=4).resolve(32).fit_spares(2.5, 3, 32)
    explicit = ElasticOptions(workers=2, spares=3).resolve(32)
    assert not explicit.spares_auto
    with pytest.raises(ConfigError, match=r"--spares=3 .*5 needed, 4 of 4 CPUs free; use --spares 2 or omit"):
        explicit.fit_spares(4, 4, 32)
    # auto spares survive the run's elastic.json (a resumed run fits them again); resolving twice is stable
    again = ElasticOptions.from_dict(fitted.to_dict())
    assert again.spares is None and again.resolve(32).spares == 2
    assert auto.resolve(32) == auto


def test_errors_print_as_one_line():
    from openmindspore.cli.main import one_line

    assert one_line("--workers=3 is invalid: expected 1") == "--workers=3 is invalid: expected 1"
    remote = "could not form a group of 2 workers: connect failed: [1] error: Traceback (most recent call last):\n"
    remote += '  File "worker.py", line 9, in connect\n    raise\nTimeoutError: rank 1 never connected within 30 s\n'
    assert one_line(remote) == (
        "could not form a group of 2 workers: connect failed: [1] error: Traceback (most recent call last): ... "
        "TimeoutError: rank 1 never connected within 30 s"
    )


def test_a_group_that_never_forms_is_named_with_its_deadline_and_cause():
    from openmindspore.elastic.membership import _connect_error

    msg = _connect_error(1, "pending", "", 120.4)
    assert msg.startswith("[1] did not connect within 120 s") and "ephemeral TCP ports" in msg
    remote = "Traceback (most recent call last):\n  File ...\nRuntimeError: rank 0 refused\n"
    assert _connect_error(0, "error", remote, 3.0) == "[0] error: RuntimeError: rank 0 refused"
