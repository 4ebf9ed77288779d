"""The lab's Ceph daemons as processes: which ones there are, how to tell one is alive, and how
to ask one a question through its admin socket. No state; :mod:`lab.ceph_daemons` uses these."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

MON_ID = "a"
OSD_ID = 0
RGW_ENTITY = "client.rgw.gw"
_LOG_TAIL_LINES = 25


class CephError(Exception):
    """A lab daemon or admin command failed; the message carries the relevant log tail."""


@dataclass(frozen=True)
class DaemonState:
    """What ``CephCluster.status()`` reports for one daemon."""

    name: str
    pid: int | None
    running: bool
    detail: str


@dataclass(frozen=True)
class Daemon:
    short: str  # "mon", "osd", "rgw": the name reported by status()
    entity: str  # Ceph entity name: mon.a, osd.0, client.rgw.gw
    binary: str
    ident: tuple[str, ...]  # arguments naming the daemon on its command line

    def command(self, conf: Path) -> list[str]:
        return [self.binary, *self.ident, "-c", str(conf)]


MON = Daemon("mon", f"mon.{MON_ID}", "ceph-mon", ("-i", MON_ID))
OSD = Daemon("osd", f"osd.{OSD_ID}", "ceph-osd", ("-i", str(OSD_ID)))
RGW = Daemon("rgw", RGW_ENTITY, "radosgw", ("-n", RGW_ENTITY))
DAEMONS = (MON, OSD, RGW)


def proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    _, _, rest = raw.rpartition(")")
    fields = rest.split()
    return fields[0] if fields else None


def alive(pid: int) -> bool:
    state = proc_state(pid)
    return state is not None and state not in ("Z", "X", "x")


def gone(pid: int) -> bool:
    """True once every thread of ``pid`` has exited (a zombie leader alone counts as gone).

    After SIGKILL the thread-group leader turns into a zombie before its other threads have
    finished exiting; until the last one has, the process still holds its files and locks.
    """
    state = proc_state(pid)
    if state is None:
        return True
    if state not in ("Z", "X", "x"):
        return False
    try:
        return len(os.listdir(f"/proc/{pid}/task")) <= 1
    except OSError:
        return True


def file_locked(path: Path) -> bool:
    """Whether another process holds a POSIX lock on ``path`` (Ceph locks its pid file)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def matches(argv: list[str], daemon: Daemon, conf: Path) -> bool:
    if not argv or os.path.basename(argv[0]) != daemon.binary:
        return False
    if str(conf) not in argv or "--mkfs" in argv:
        return False
    n = len(daemon.ident)
    return any(tuple(argv[i : i + n]) == daemon.ident for i in range(len(argv) - n + 1))


def tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def asok_command(path: Path, prefix: str, timeout: float = 5.0) -> dict[str, object]:
    """Send one command to a Ceph admin socket and decode its JSON answer.

    The protocol: the request is a JSON command terminated by NUL; the answer is a 4-byte
    big-endian length followed by that many bytes.
    """
    request = json.dumps({"prefix": prefix, "format": "json"}).encode() + b"\0"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(request)
        header = _recv_exact(sock, 4)
        (length,) = struct.unpack(">I", header)
        payload = _recv_exact(sock, length)
    decoded = json.loads(payload.decode("utf-8", "replace"))
    if not isinstance(decoded, dict):
        raise TypeError(f"unexpected admin socket answer: {decoded!r}")
    return decoded


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("admin socket closed early")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)

