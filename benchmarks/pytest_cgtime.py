"""CPU-seconds per test, counting every process a test starts (Ray's daemons and workers included).

A pytest plugin for profiling the suite under pytest-xdist: each worker moves itself into its own cgroup
(v1 ``cpuacct``, needs root) at start; processes it starts inherit the group, so the group's usage around a
test is that test's CPU, whatever else runs on the machine (wall times are not). One JSON line per test::

    PYTHONPATH=benchmarks .venv/bin/python -m pytest -p pytest_cgtime -n 2 --dist loadfile \\
        --no-loadscope-reorder -m "not heavy" tests
    .venv/bin/python benchmarks/pytest_cgtime.py     # CPU-seconds per file, largest first
"""

from __future__ import annotations

import collections
import glob
import json
import os
import sys
import time

import pytest

CGROUP = "/sys/fs/cgroup/cpuacct"
OUT = os.environ.get("CGTIME_DIR", "/tmp/cgtime")
_group: str | None = None


def _usage() -> float:
    with open(f"{CGROUP}/{_group}/cpuacct.usage") as f:
        return int(f.read()) / 1e9


def pytest_configure(config: pytest.Config) -> None:  # noqa: ARG001 - pytest's hook signature
    global _group
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return  # the controller runs no test
    _group = f"cgtime_{worker}"
    os.makedirs(f"{CGROUP}/{_group}", exist_ok=True)
    os.makedirs(OUT, exist_ok=True)
    with open(f"{CGROUP}/{_group}/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):  # noqa: ARG001
    if _group is None:
        yield
        return
    c0, t0 = _usage(), time.time()
    yield
    row = {"id": item.nodeid, "cpu_s": round(_usage() - c0, 2), "wall_s": round(time.time() - t0, 2)}
    with open(f"{OUT}/{_group}.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def main() -> None:
    files: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for path in glob.glob(f"{OUT}/cgtime_*.jsonl"):
        for line in open(path):
            r = json.loads(line)
            f = files[r["id"].split("::")[0]]
            f[0], f[1], f[2] = f[0] + r["cpu_s"], f[1] + r["wall_s"], f[2] + 1
    print(f"{sum(f[0] for f in files.values()):.0f} CPU-s in {sum(f[2] for f in files.values())} tests")
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    for name, (cpu, wall, n) in sorted(files.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"{cpu:8.1f} CPU-s {wall:8.1f} s wall {n:4d} tests  {name}")


if __name__ == "__main__":
    main()
