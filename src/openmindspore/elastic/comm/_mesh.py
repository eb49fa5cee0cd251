"""A full mesh of stream sockets between the ranks of one group: rendezvous, barriers with deadlines,
failure detection (a dead peer's socket reads end-of-file at once) and abort from another thread.

Same node: Linux abstract Unix sockets named after the group (nothing to clean up, nothing on disk).
Rank ``r`` listens on ``\\0oms-comm-<group>-<r>``, connects to every lower rank and accepts every higher
one; each connection starts with a handshake ``(rank, pid)``.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time
from typing import Any

from openmindspore.elastic.comm.base import CommAbortedError, CommError, CommTimeoutError, PeerLostError

__all__ = ["Mesh", "socket_name"]

_HELLO = struct.Struct("<ii")  # rank, pid


def socket_name(group: str, rank: int) -> str:
    """Abstract Unix socket address of ``rank`` in ``group`` (at most 107 bytes)."""
    name = f"\0oms-comm-{group}-{rank}"
    if len(name.encode()) > 107:
        raise CommError(f"group name {group!r} is too long for a socket address ({len(name)} > 107 bytes)")
    return name


class Mesh:
    """Sockets to every other rank of ``group``. ``timeout`` (seconds) bounds every wait."""

    def __init__(
        self, group: str, rank: int, world_size: int, timeout: float, abort_fd: int, aborted: threading.Event
    ) -> None:
        self.group, self.rank, self.world_size, self.timeout = group, rank, world_size, timeout
        self._abort_fd, self._aborted = abort_fd, aborted
        self.peers: dict[int, socket.socket] = {}
        self.pids: dict[int, int] = {rank: os.getpid()}
        self._tag = 0
        self._listener: socket.socket | None = None

    # ------------------------------------------------------------ rendezvous
    def connect(self) -> None:
        """Connect to every peer (deadline ``timeout``); raises :class:`CommTimeoutError` naming the ranks
        that did not show up."""
        if self.world_size == 1:
            return
        deadline = time.monotonic() + self.timeout
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind(socket_name(self.group, self.rank))
        lst.listen(self.world_size)
        lst.setblocking(False)
        self._listener = lst
        try:
            for peer in range(self.rank):
                self._dial(peer, deadline)
            while len(self.peers) < self.world_size - 1:
                self._wait_readable([lst], deadline, missing=self._missing())
                try:
                    conn, _ = lst.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(True)
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    peer, pid = _HELLO.unpack(_recv_exact(conn, _HELLO.size))
                except (OSError, CommError):
                    conn.close()
                    continue
                conn.settimeout(None)
                self.peers[peer], self.pids[peer] = conn, pid
        finally:
            lst.close()
            self._listener = None

    def _missing(self) -> list[int]:
        return [r for r in range(self.world_size) if r != self.rank and r not in self.peers]

    def _dial(self, peer: int, deadline: float) -> None:
        while True:
            if self._aborted.is_set():
                raise CommAbortedError(f"rank {self.rank}: aborted while connecting to rank {peer}", [peer])
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(socket_name(self.group, peer))
                s.sendall(_HELLO.pack(self.rank, os.getpid()))
                self.peers[peer] = s
                return
            except (ConnectionRefusedError, FileNotFoundError):
                s.close()
                if time.monotonic() > deadline:
                    raise CommTimeoutError(
                        f"rank {self.rank} of group {self.group}: rank {peer} did not listen "
                        f"within {self.timeout:.1f} s",
                        [peer],
                    ) from None
                time.sleep(0.002)

    # --------------------------------------------------------------- waiting
    def _wait_readable(self, socks: list[socket.socket], deadline: float, missing: list[int]) -> list[socket.socket]:
        """Sockets of ``socks`` that are readable; raises on abort or deadline."""
        while True:
            left = deadline - time.monotonic()
            if self._aborted.is_set():
                raise CommAbortedError(f"rank {self.rank} of group {self.group}: collective aborted", missing)
            if left <= 0:
                raise CommTimeoutError(
                    f"rank {self.rank} of group {self.group}: rank(s) {missing} did not "
                    f"respond within {self.timeout:.1f} s",
                    missing,
                )
            waitable: list[Any] = [*socks, self._abort_fd]  # sockets and the abort pipe's fd
            readable, _, _ = select.select(waitable, [], [], left)
            ready = [s for s in readable if s is not self._abort_fd]
            if ready:
                return ready

    def barrier(self) -> None:
        """Every rank sends one tag byte to every peer and reads one from each: returns once all ranks have
        arrived. A closed peer raises :class:`PeerLostError` at once."""
        if self.world_size == 1:
            if self._aborted.is_set():
                raise CommAbortedError(f"rank {self.rank}: collective aborted")
            return
        self._tag = (self._tag + 1) & 0xFF
        tag = bytes([self._tag])
        for peer, s in self.peers.items():
            try:
                s.sendall(tag)
            except OSError as e:
                raise PeerLostError(
                    f"rank {self.rank} of group {self.group}: rank {peer} (pid "
                    f"{self.pids.get(peer)}) is gone ({e.strerror})",
                    [peer],
                ) from None
        waiting = {s: p for p, s in self.peers.items()}
        deadline = time.monotonic() + self.timeout
        while waiting:
            for s in self._wait_readable(list(waiting), deadline, missing=sorted(waiting.values())):
                peer = waiting.pop(s)
                try:
                    got = s.recv(1)
                except OSError:
                    got = b""
                if not got:
                    raise PeerLostError(
                        f"rank {self.rank} of group {self.group}: rank {peer} (pid "
                        f"{self.pids.get(peer)}) closed its connection (process died)",
                        [peer],
                    )
                if got != tag:
                    raise CommError(f"rank {self.rank}: rank {peer} is out of step (tag {got[0]} != {tag[0]})", [peer])

    def close(self) -> None:
        for s in self.peers.values():
            try:
                s.close()
            except OSError:
                pass
        self.peers.clear()


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = s.recv(n - len(buf))
        if not part:
            raise CommError("connection closed during the handshake")
        buf += part
    return buf
