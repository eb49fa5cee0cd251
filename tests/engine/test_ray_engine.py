"""What only Ray does behind the seam (the rest is the engines' contract, test_contract.py): gang
reservation of CPU slots, where the bundles landed, and a reservation the cluster cannot hold."""

from __future__ import annotations

import os

import pytest

from openmindspore.engine import EngineError, get_engine
from openmindspore.errors import OMSError

pytestmark = pytest.mark.distributed


class Echo:
    """A small actor: its methods run in its own process."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def hello(self, x: int) -> str:
        return f"{self.tag}:{x}"

    def environment(self) -> dict:
        import ray

        env = {k: os.environ.get(k) for k in ("GLOG_v", "PYTHONWARNINGS")}
        return {"runtime_env": dict(ray.get_runtime_context().runtime_env), **env}


@pytest.fixture(scope="module")
def engine():
    eng = get_engine("ray")
    eng.start(None, num_cpus=2)
    eng.start(None, num_cpus=2)  # idempotent
    try:
        yield eng
    finally:
        eng.shutdown()
        eng.shutdown()  # idempotent


def test_reserve_places_bundles_and_refuses_what_the_cluster_cannot_hold(engine):
    with pytest.raises(EngineError, match=r"64 CPU slots.*2 CPUs") as err:
        engine.reserve(64)  # more than the whole cluster: refused at once, not after a wait
    assert isinstance(err.value, OMSError)  # the CLI prints it as one line and exits 2
    engine.reserve(2, "PACK")
    nodes = engine.bundle_nodes()
    assert len(nodes) == 2 and all(n is not None and n[1] == 2.0 for n in nodes)
    a = engine.spawn(Echo, "d", name="echo-d", bundle=1)
    assert engine.get(engine.call(a, "hello", 2), timeout=60) == "d:2"
    other = get_engine("ray")  # a second reservation while the first holds every CPU
    with pytest.raises(EngineError, match="could not reserve 1 CPU slot"):
        other.reserve(1, timeout_s=1.0)
    engine.kill(a)


def test_embedded_workers_inherit_the_settings_without_a_runtime_env(engine):
    """The workers of an embedded cluster get GLOG_v and PYTHONWARNINGS from the node's environment: a runtime_env
    of env_vars would start each through Ray's setup_worker and runtime-env agent (more CPU per worker)."""
    assert os.environ.get("PYTHONWARNINGS") != "ignore"  # set for the cluster's processes only, then restored
    a = engine.spawn(Echo, "env", name="echo-env")
    env = engine.get(engine.call(a, "environment"), timeout=60)
    engine.kill(a)
    assert "env_vars" not in env["runtime_env"], env  # (py_modules when an earlier test left OMS_CODE_PATH set)
    assert env["GLOG_v"] == os.environ.get("GLOG_v", "3") and env["PYTHONWARNINGS"] == "ignore", env


def test_mindspores_import_leaves_protobufs_compiled_implementation_to_later_processes():
    """MindSpore's import sets PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python when unset, and every process started
    after it (Ray's daemons and workers, Serve's) would run pure-Python protobuf; importing openmindspore first
    keeps protobuf's default, and a value the user set still wins."""
    import subprocess
    import sys

    code = "import os, openmindspore, mindspore; print(os.environ['PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION'])"
    for user, want in ((None, "upb"), ("python", "python")):
        env = {k: v for k, v in os.environ.items() if k != "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"}
        env.update({"GLOG_v": "3", **({"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": user} if user else {})})
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == want, (user, out.stdout, out.stderr[-500:])
