"""A full mesh of stream sockets between the ranks of one group: rendezvous, barriers with deadlines,
failure detection (a dead peer's socket reads end-of-file at once) and abort from another thread.

Same node: Linux abstract Unix sockets named after the group (nothing to clean up, nothing on disk).
Rank ``r`` listens on ``\\0oms-comm-<group>-<r>``, connects to every lower rank and accepts every higher
one; each connection starts with a handshake ``(rank, pid)``. Other nodes (``remote``: rank -> TCP address):
TCP to the peer's long-lived :class:`~openmindspore.elastic.comm._tcp.Endpoint`, non-blocking sockets that
also carry data (:meth:`Mesh.exchange`); a barrier among the ranks of one node watches the remote sockets
for end-of-file, so a death anywhere is seen at once.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time
from typing import Any

from openmindspore.elastic.comm._tcp import Endpoint, dial, read_exact, tune
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
        self,
        group: str,
        rank: int,
        world_size: int,
        timeout: float,
        abort_fd: int,
        aborted: threading.Event,
        remote: dict[int, tuple[str, int]] | None = None,
        endpoint: Endpoint | None = None,
    ) -> None:
        self.group, self.rank, self.world_size, self.timeout = group, rank, world_size, timeout
        self._abort_fd, self._aborted = abort_fd, aborted
        self.remote = dict(remote or {})  # ranks on other nodes -> their endpoint's (host, port)
        if self.remote and endpoint is None:
            raise CommError(f"rank {rank}: peers on other nodes need this process's TCP endpoint")
        self._endpoint = endpoint
        self.local = [r for r in range(world_size) if r not in self.remote]  # this node's ranks, in order
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
        ep = self._endpoint
        if ep is not None:
            ep.drop_others(self.group)
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind(socket_name(self.group, self.rank))
        lst.listen(self.world_size)
        lst.setblocking(False)
        self._listener = lst
        try:
            for peer in range(self.rank):
                if peer in self.remote:
                    host, port = self.remote[peer]
                    s = dial(host, port, self.group, self.rank, deadline, peer, self._aborted)
                    tune(s)
                    self.peers[peer] = s
                else:
                    self._dial(peer, deadline)
            while len(self.peers) < self.world_size - 1:
                if ep is not None:
                    for peer, (conn, pid) in ep.take(self.group).items():
                        if peer in self.remote and peer > self.rank:
                            tune(conn)
                            self.peers[peer], self.pids[peer] = conn, pid
                        else:
                            conn.close()
                    if len(self.peers) == self.world_size - 1:
                        break
                listening: list[Any] = [lst] if ep is None else [lst, ep.sock]
                ready = self._wait_readable(listening, deadline, missing=self._missing())
                if ep is not None and ep.sock in ready:
                    ep.accept_one()
                if lst not in ready:
                    continue
                try:
                    conn, _ = lst.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(True)
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    peer, pid = _HELLO.unpack(read_exact(conn, _HELLO.size))
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

    def barrier(self, among: list[int] | None = None) -> None:
        """Every rank of ``among`` (default: all) sends one tag byte to every other and reads one from each:
        returns once all have arrived. A closed peer raises :class:`PeerLostError` at once; while waiting, the
        sockets of ranks on other nodes outside ``among`` are watched for end-of-file too."""
        if self.world_size == 1:
            if self._aborted.is_set():
                raise CommAbortedError(f"rank {self.rank}: collective aborted")
            return
        ranks = [p for p in (self.peers if among is None else among) if p != self.rank]
        self._tag = (self._tag + 1) & 0xFF
        tag = bytes([self._tag])
        deadline = time.monotonic() + self.timeout
        for peer in ranks:
            self._send(peer, tag, deadline)
        waiting = {self.peers[p]: p for p in ranks}
        watch = {self.peers[p]: p for p in self.remote if p not in ranks}
        while waiting:
            for s in self._wait_readable([*waiting, *watch], deadline, missing=sorted(waiting.values())):
                if s in watch:
                    self._check_alive(watch.pop(s))
                    continue
                peer = waiting.pop(s)
                try:
                    got = s.recv(1)
                except BlockingIOError:
                    waiting[s] = peer
                    continue
                except OSError:
                    got = b""
                if not got:
                    raise self._lost(peer)
                if got != tag:
                    raise CommError(f"rank {self.rank}: rank {peer} is out of step (tag {got[0]} != {tag[0]})", [peer])

    def _lost(self, peer: int) -> PeerLostError:
        return PeerLostError(
            f"rank {self.rank} of group {self.group}: rank {peer} (pid {self.pids.get(peer)}) closed its "
            "connection (process died)",
            [peer],
        )

    def _check_alive(self, peer: int) -> None:
        """``peer``'s socket is readable: end-of-file (or a reset) means it died; data means it is alive."""
        try:
            if not self.peers[peer].recv(1, socket.MSG_PEEK):
                raise self._lost(peer)
        except BlockingIOError:
            pass
        except OSError:
            raise self._lost(peer) from None

    def _send(self, peer: int, data: bytes, deadline: float) -> None:
        s = self.peers[peer]
        view = memoryview(data)
        while view:
            try:
                view = view[s.send(view) :]
                continue
            except BlockingIOError:
                pass
            except OSError:
                raise self._lost(peer) from None
            self._wait_writable(s, deadline, peer)

    def _wait_writable(self, s: socket.socket, deadline: float, peer: int) -> None:
        left = deadline - time.monotonic()
        if self._aborted.is_set():
            raise CommAbortedError(f"rank {self.rank} of group {self.group}: collective aborted", [peer])
        if left <= 0:
            raise CommTimeoutError(
                f"rank {self.rank} of group {self.group}: rank {peer} did not take data within {self.timeout:.1f} s",
                [peer],
            )
        select.select([self._abort_fd], [s], [], left)

    def exchange(self, sends: dict[int, memoryview], recvs: dict[int, memoryview]) -> None:
        """Send ``sends[p]`` to and receive exactly ``len(recvs[p])`` bytes from each peer ``p`` on another
        node, all at once (non-blocking: neither side's full buffer can stall the other); one deadline."""
        out = {self.peers[p]: v for p, v in sends.items() if len(v)}
        inn = {self.peers[p]: v for p, v in recvs.items() if len(v)}
        who = {self.peers[p]: p for p in (*sends, *recvs)}
        deadline = time.monotonic() + self.timeout
        while out or inn:
            left = deadline - time.monotonic()
            if self._aborted.is_set():
                raise CommAbortedError(f"rank {self.rank} of group {self.group}: collective aborted", [])
            if left <= 0:
                missing = sorted({who[s] for s in (*out, *inn)})
                raise CommTimeoutError(
                    f"rank {self.rank} of group {self.group}: rank(s) {missing} did not exchange data within "
                    f"{self.timeout:.1f} s",
                    missing,
                )
            waitable: list[Any] = [*inn, self._abort_fd]  # sockets and the abort pipe's fd
            readable, writable, _ = select.select(waitable, list(out), [], left)
            for s in writable:
                try:
                    n = s.send(out[s])
                except BlockingIOError:
                    continue
                except OSError:
                    raise self._lost(who[s]) from None
                rest = out[s][n:]
                if rest:
                    out[s] = rest
                else:
                    del out[s]
            for s in (x for x in readable if x in inn):
                try:
                    n = s.recv_into(inn[s])
                except BlockingIOError:
                    continue
                except OSError:
                    n = 0
                if not n:
                    raise self._lost(who[s])
                rest = inn[s][n:]
                if rest:
                    inn[s] = rest
                else:
                    del inn[s]

    def close(self) -> None:
        for s in self.peers.values():
            try:
                s.close()
            except OSError:
                pass
        self.peers.clear()
