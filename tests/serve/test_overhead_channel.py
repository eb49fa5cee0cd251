"""The replica channel (``serve/channel.py``) on its own: real Unix sockets, a real server thread, a real replica
process killed mid-call, on asyncio's loop and on uvloop (the loop of Ray Serve replicas). Results and errors come
back as the handler made them; a wrong token, a closed server and a killed process are each a ``ChannelError`` (the
pool's cue to retry elsewhere), and the server keeps serving."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import pytest

from openmindspore.serve.channel import ChannelClient, ChannelError, ChannelServer
from openmindspore.serve.registry import InputError


class _Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickle cannot rebuild it from args
        super().__init__(f"a={a} b={b}")


def _handler(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if "bad" in inputs:
        raise InputError("input 'bad': not an image")
    if "odd" in inputs:
        raise _Unpicklable(1, 2)
    return {"y": inputs["x"] * 2}


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Runs a coroutine on a fresh loop of each kind."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    def go(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)

    return go


@pytest.fixture(scope="module")
def server():
    srv = ChannelServer(_handler, node="this-node")
    yield srv
    srv.close()


def test_results_and_errors_round_trip(server, run):
    big = np.arange(3 * 224 * 224 * 4, dtype=np.float32).reshape(4, 3, 224, 224)  # 2.4 MB each way

    async def go() -> None:
        client = ChannelClient(server.info)
        small = await client.call({"x": np.ones((1, 4), np.float32)})
        np.testing.assert_array_equal(small["y"], np.full((1, 4), 2, np.float32))
        outs = await asyncio.gather(*(client.call({"x": big + i}) for i in range(3)))  # 3 connections at once
        for i, out in enumerate(outs):
            np.testing.assert_array_equal(out["y"], (big + i) * 2)
        with pytest.raises(InputError, match="input 'bad': not an image"):
            await client.call({"bad": np.zeros(1)})
        with pytest.raises(RuntimeError, match="_Unpicklable: a=1 b=2"):
            await client.call({"odd": np.zeros(1)})
        assert len(client._idle) == 3  # an error answer leaves the connection usable
        assert (await client.call({"x": np.ones(2)}))["y"].tolist() == [2, 2]
        client.close()

    run(go())


def test_wrong_token_is_refused_and_the_server_keeps_serving(server, run):
    async def go() -> None:
        intruder = ChannelClient({**server.info, "token": b"x" * len(server.info["token"])})
        with pytest.raises(ChannelError):
            await intruder.call({"x": np.ones(1)})
        client = ChannelClient(server.info)
        assert (await client.call({"x": np.ones(1)}))["y"].tolist() == [2]
        client.close()

    run(go())


def test_closed_server_is_a_channel_error(run):
    srv = ChannelServer(_handler, node="n")

    async def go() -> None:
        client = ChannelClient(srv.info)
        assert (await client.call({"x": np.ones(1)}))["y"].tolist() == [2]  # one idle connection kept
        assert srv.alive
        srv.close()
        assert not srv.alive  # what the replica's health check reports
        with pytest.raises(ChannelError):  # the idle connection was closed by the server
            await client.call({"x": np.ones(1)})
        with pytest.raises(ChannelError):  # and nothing listens any more
            await client.call({"x": np.ones(1)})

    run(go())


_REPLICA = textwrap.dedent(
    """
    import json, sys, time
    from openmindspore.serve.channel import ChannelServer

    def slow(x):
        print("busy", flush=True)
        time.sleep(120)
        return x

    srv = ChannelServer(slow, node="n")
    info = dict(srv.info, token=srv.info["token"].hex())
    print(json.dumps(info), flush=True)
    time.sleep(300)
    """
)


def test_killed_replica_process_fails_the_call_at_once():
    """On uvloop only (the front ends' loop): the replica process is the slow part of this test."""
    uvloop = pytest.importorskip("uvloop")
    proc = subprocess.Popen([sys.executable, "-c", _REPLICA], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        info["token"] = bytes.fromhex(info["token"])

        async def go() -> None:
            client = ChannelClient(info)
            call = asyncio.ensure_future(client.call(1))
            await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)  # "busy": mid-call
            proc.kill()
            with pytest.raises(ChannelError):
                await asyncio.wait_for(call, 60)  # generous: only "it fails, it does not hang" is asserted

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(go())
    finally:
        proc.kill()
        proc.wait(30)


def test_a_pool_that_would_use_channels_starts_no_ray_when_built():
    """Front ends build pools on routes; tests build route tables without Ray: the node is read on first use."""
    import ray

    from openmindspore.serve.replicas import ReplicaPool

    if ray.is_initialized():
        pytest.skip("Ray already runs in this process")
    pool = ReplicaPool("oms.m.1", channel=True)
    assert pool.size == 0 and pool.channels == 0
    assert not ray.is_initialized()
