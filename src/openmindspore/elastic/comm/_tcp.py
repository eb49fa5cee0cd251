"""A process's TCP endpoint for collectives that span nodes: one listening socket for the life of the process.

Owns the listening socket (bound to the node's IP, port 0: the driver learns the port once and hands every
group's addresses out in its comm spec) and the connections accepted for groups other than the one being
formed (a peer may dial the next group before this process has left the last one). A connection starts
with a handshake ``(rank, pid, group)``; :meth:`Endpoint.take` hands over those of one group.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

from openmindspore.elastic.comm.base import CommAbortedError, CommError, CommTimeoutError

__all__ = ["Endpoint", "dial", "read_exact", "tune"]

_HELLO = struct.Struct("<iiH")  # rank, pid, length of the group name (then the name, utf-8)
_HANDSHAKE_S = 2.0  # a connection that does not say who it is within this is dropped


def tune(s: socket.socket) -> None:
    """Latency over throughput for barrier bytes (no Nagle), large buffers for the data, non-blocking."""
    if s.family in (socket.AF_INET, socket.AF_INET6):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
            except OSError:
                pass
    s.setblocking(False)


def _hello(group: str, rank: int) -> bytes:
    name = group.encode()
    return _HELLO.pack(rank, os.getpid(), len(name)) + name


def read_exact(s: socket.socket, n: int) -> bytes:
    """``n`` bytes from ``s`` (a handshake); a closed connection is a :class:`CommError`."""
    buf = b""
    while len(buf) < n:
        part = s.recv(n - len(buf))
        if not part:
            raise CommError("connection closed during the handshake")
        buf += part
    return buf


def dial(
    host: str, port: int, group: str, rank: int, deadline: float, peer: int, aborted: threading.Event
) -> socket.socket:
    """Connect to ``peer``'s endpoint at ``host:port`` for ``group`` as ``rank`` (retrying until ``deadline``,
    a ``time.monotonic()`` value, or ``aborted``); raises :class:`CommTimeoutError` naming the address when it
    never answers, :class:`CommAbortedError` when aborted."""
    last: OSError | None = None
    while time.monotonic() < deadline:
        if aborted.is_set():
            raise CommAbortedError(f"rank {rank}: aborted while connecting to rank {peer}", [peer])
        try:
            s = socket.create_connection((host, port), timeout=max(0.05, min(1.0, deadline - time.monotonic())))
        except OSError as e:  # refused (not up yet) or unreachable
            last = e
            time.sleep(0.005)
            continue
        s.settimeout(None)
        s.sendall(_hello(group, rank))
        return s
    raise CommTimeoutError(
        f"rank {rank} of group {group}: cannot reach rank {peer} at {host}:{port} ({last}); "
        "check that the nodes can open TCP connections to each other on any port (firewall, security group)",
        [peer],
    )


class Endpoint:
    """The listening socket of this process (see module docstring). ``host``: the IP of this process's node
    as the other nodes reach it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.sock.setblocking(False)
        self.host, self.port = host, int(self.sock.getsockname()[1])
        self._held: dict[tuple[str, int], tuple[socket.socket, int]] = {}

    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept_one(self) -> None:
        """Accept a pending connection (call when the socket is readable) and hold it under its group."""
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.settimeout(_HANDSHAKE_S)
        try:
            rank, pid, size = _HELLO.unpack(read_exact(conn, _HELLO.size))
            group = read_exact(conn, size).decode()
        except (OSError, CommError, UnicodeDecodeError, struct.error):
            conn.close()
            return
        conn.settimeout(None)
        old = self._held.pop((group, rank), None)
        if old is not None:
            old[0].close()
        self._held[(group, rank)] = (conn, pid)

    def take(self, group: str) -> dict[int, tuple[socket.socket, int]]:
        """The held connections of ``group`` (rank -> (socket, pid)), handed over; those of any other group
        are closed (a group is formed once, by one call at a time)."""
        out = {}
        for key in list(self._held):
            if key[0] == group:
                out[key[1]] = self._held.pop(key)
        return out

    def drop_others(self, group: str) -> None:
        """Close held connections of groups other than ``group`` (stale formations)."""
        for key in [k for k in self._held if k[0] != group]:
            self._held.pop(key)[0].close()

    def close(self) -> None:
        for conn, _ in self._held.values():
            conn.close()
        self._held.clear()
        self.sock.close()
