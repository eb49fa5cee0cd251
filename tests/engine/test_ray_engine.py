"""What only Ray does behind the seam (the rest is the engines' contract, test_contract.py): gang
reservation of CPU slots, where the bundles landed, and a reservation the cluster cannot hold."""

from __future__ import annotations

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
