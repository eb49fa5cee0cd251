"""The front end's listening socket keeps small responses from waiting on Nagle's algorithm: on asyncio's own event
loop (the in-process server of the tests, any deployment without uvloop) an accepted connection has TCP_NODELAY.
Without it uvicorn's two writes per response (head, body) waited for the client's delayed ACK: ~40 ms per request."""

from __future__ import annotations

import asyncio
import socket

from oms_testing import free_port
from openmindspore.serve.endpoints import listen_socket


def test_accepted_connections_have_tcp_nodelay_on_asyncio():
    async def go() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=listen_socket("127.0.0.1", free_port()))
        port = server.sockets[0].getsockname()[1]
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            nodelay = await asyncio.wait_for(accepted, 30)
            writer.close()
        return nodelay

    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:  # asyncio's loop, not uvloop
        assert runner.run(go()) != 0
