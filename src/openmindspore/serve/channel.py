"""The local channel from a front end to a model replica on the same node: a Unix socket instead of a Ray call.

A Ray actor call to a Serve replica (``handle_request``) costs ~1-3 ms of task submission, scheduling and
event-loop hops each way; on one node a Unix-domain socket costs tens of microseconds. A replica (``deployments.
ModelReplicaActor``) therefore also runs a ``ChannelServer``: one thread that listens on a Unix socket (Linux: an
abstract name, so nothing is left on disk when the process is killed), reads framed requests, runs them through
the replica's handler (one at a time, like the replica itself) and writes the framed answers. A front end learns
the channel's ``ChannelInfo`` (address, node, a random token) through one authenticated Ray call when it discovers
the replica (``replicas.ReplicaPool``) and keeps persistent connections to it (``ChannelClient``, one per batch
in flight). A connection must present the token first, so the channel is no wider open than the Ray call it
replaces. Ray Serve still owns the replica's life (placement, health checks, replacement); a replica on another
node is called through Ray as before.

Frames: a request is ``<u64 length><pickle of the call's arguments>``; an answer is ``<u8 kind><u64 length>
<pickle>`` where kind 0 is the handler's result and 1 the exception it raised (an exception that does not pickle
comes back as a ``RuntimeError`` with its type and message). A connection that resets, closes or fails mid-call
raises ``ChannelError`` (the replica went away: the caller drops it and retries elsewhere).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import pickle
import secrets
import selectors
import shutil
import socket
import struct
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

__all__ = ["ChannelClient", "ChannelError", "ChannelInfo", "ChannelServer"]

log = logging.getLogger("openmindspore.serve")

_REQ = struct.Struct("<Q")
_ANS = struct.Struct("<BQ")
_OK, _RAISED = 0, 1
_TOKEN_BYTES = 16
_HANDSHAKE_S = 5.0  # a connection that does not present its token within this is closed
_IO_S = 60.0  # a peer that stalls mid-frame this long is dropped (the server thread serves one frame at a time)


class ChannelError(ConnectionError):
    """The channel to a replica failed (refused, reset, closed mid-call): the replica is gone or going."""


class ChannelInfo(TypedDict):
    """How a front end reaches a replica's channel: ``address`` on node ``node`` with ``token``."""

    address: str
    node: str
    token: bytes


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError("peer closed the connection")
        got += k
    return buf


def _dump_error(e: BaseException) -> bytes:
    try:
        blob = pickle.dumps(e, protocol=5)
        pickle.loads(blob)  # an exception whose constructor takes other arguments does not come back
        return blob
    except Exception:  # noqa: BLE001 - any pickling problem: send the type and the message instead
        return pickle.dumps(RuntimeError(f"{type(e).__name__}: {e}"), protocol=5)


class ChannelServer:
    """Serves ``handler(*args)`` on a Unix socket in a daemon thread (``info`` says how to connect)."""

    def __init__(self, handler: Callable[..., Any], node: str) -> None:
        self.handler = handler
        self._token = secrets.token_bytes(_TOKEN_BYTES)
        self._dir: Path | None = None
        if sys.platform.startswith("linux"):
            address = f"\0oms-replica-{os.getpid()}-{secrets.token_hex(8)}"  # abstract: no file, gone with the process
        else:
            self._dir = Path(tempfile.mkdtemp(prefix="oms-ch-"))  # 0700: only this user
            address = str(self._dir / "replica.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(address)
        self._sock.listen(64)
        self.info: ChannelInfo = {"address": address, "node": node, "token": self._token}
        self._closed = False
        self._sel = selectors.DefaultSelector()
        self._thread = threading.Thread(target=self._serve, name="oms-replica-channel", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop accepting and close every connection (front ends see ``ChannelError`` and go elsewhere)."""
        self._closed = True
        self._thread.join(2.0)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def _serve(self) -> None:
        self._sel.register(self._sock, selectors.EVENT_READ)
        try:
            while not self._closed:
                for key, _ in self._sel.select(timeout=0.25):
                    conn: socket.socket = key.fileobj  # type: ignore[assignment]
                    if conn is self._sock:
                        self._accept()
                    elif not self._answer(conn):
                        self._sel.unregister(conn)
                        conn.close()
        except Exception:  # the replica's health check reports the stopped thread (``alive``); Serve replaces it
            log.exception("replica channel stopped")
            raise
        finally:
            for key in list(self._sel.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            self._sel.close()

    @property
    def alive(self) -> bool:
        """The serving thread runs (false once closed, or if it failed)."""
        return self._thread.is_alive()

    def _accept(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except OSError as e:  # e.g. out of file descriptors: this connection only
            log.warning("replica channel: accept failed: %s", e)
            return
        conn.settimeout(_HANDSHAKE_S)
        try:
            ok = hmac.compare_digest(bytes(_recv_exact(conn, _TOKEN_BYTES)), self._token)
        except OSError:
            ok = False
        if not ok:
            log.warning("replica channel: closed a connection without the right token")
            conn.close()
            return
        conn.settimeout(_IO_S)
        self._sel.register(conn, selectors.EVENT_READ)

    def _answer(self, conn: socket.socket) -> bool:
        """Read one request, run it, write the answer; False when the connection is finished."""
        try:
            (n,) = _REQ.unpack(_recv_exact(conn, _REQ.size))
            args = pickle.loads(_recv_exact(conn, n))
        except Exception:  # noqa: BLE001 - a broken or undecodable frame ends this connection only
            return False
        try:
            kind, blob = _OK, pickle.dumps(self.handler(*args), protocol=5)
        except Exception as e:  # noqa: BLE001 - the handler's error goes back to the caller
            kind, blob = _RAISED, _dump_error(e)
        try:
            head = _ANS.pack(kind, len(blob))
            if len(blob) < 65536:  # one syscall for small answers; no copy of large ones
                conn.sendall(head + blob)
            else:
                conn.sendall(head)
                conn.sendall(blob)
        except OSError:
            return False
        return True


class ChannelClient:
    """Persistent connections to one replica's ``ChannelServer``; ``call(*args)`` returns the handler's result."""

    def __init__(self, info: ChannelInfo) -> None:
        self.info = info
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # connect the socket here: uvloop (the loop of Ray Serve replicas) cannot connect to an abstract name itself
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(_HANDSHAKE_S)
            sock.connect(self.info["address"])  # local: immediate, or refused at once
            sock.sendall(self.info["token"])
            sock.setblocking(False)
            return await asyncio.open_unix_connection(sock=sock)
        except BaseException:
            sock.close()
            raise

    async def call(self, *args: Any) -> Any:
        """Send ``args``, wait for the answer; re-raises what the handler raised, ``ChannelError`` if the link fails."""
        payload = pickle.dumps(args, protocol=5)
        done = False
        try:
            reader, writer = self._idle.pop() if self._idle else await self._connect()
        except OSError as e:
            raise ChannelError(f"cannot connect to the replica's channel: {e}") from None
        try:
            writer.write(_REQ.pack(len(payload)))
            writer.write(payload)
            kind, n = _ANS.unpack(await reader.readexactly(_ANS.size))
            blob = await reader.readexactly(n)
            done = True
        except (OSError, asyncio.IncompleteReadError) as e:
            raise ChannelError(f"the replica's channel failed mid-call: {type(e).__name__}: {e}") from None
        finally:  # a call cut short (error, cancellation) leaves the stream mid-frame: never reuse it
            if done:
                self._idle.append((reader, writer))
            else:
                writer.close()
        try:
            result = pickle.loads(blob)
        except Exception as e:  # noqa: BLE001 - e.g. a type this process cannot import
            raise RuntimeError(f"the replica's answer could not be decoded here: {type(e).__name__}: {e}") from None
        if kind == _RAISED:
            raise result
        return result

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
