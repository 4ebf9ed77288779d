"""The load-balancer adapter: HAProxy's runtime API on its stats socket.

This is how a runbook switches traffic the way an operator would (``set server B/S state
ready|drain|maint``), points a server slot at a rescheduled replica (``set server B/S addr``),
and reads HAProxy's own view of its servers (``show stat``: UP, DOWN, MAINT, DRAIN, what the
health checks last said). Socket errors become :class:`~harness.errors.TargetUnreachable`; a
command HAProxy answers with an error becomes :class:`CommandRejected`.
"""

from __future__ import annotations

import csv
import io
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import Inconclusive, TargetUnreachable

ADMIN_STATES = ("ready", "drain", "maint")

#: How HAProxy's answers to ``set server`` begin when it did what was asked (else it is empty).
_OK_ANSWERS = ("no need to change", "ip changed", "port changed")


class CommandRejected(Inconclusive):
    """HAProxy answered a runtime command with an error (unknown server, bad argument)."""


@dataclass(frozen=True)
class ServerView:
    """One server as HAProxy sees it (a row of ``show stat``)."""

    name: str
    status: str  # UP, DOWN, MAINT, DRAIN, "UP 1/2", "DOWN 1/2", "no check", ...
    backup: bool
    addr: str  # host:port
    current_sessions: int
    total_sessions: int
    check: str  # last health check result, e.g. L7OK, L4CON, L7TOUT
    last_change_s: int

    @property
    def up(self) -> bool:
        """Taking traffic: UP (also while a failing check has not reached ``fall`` yet)."""
        return self.status == "UP" or self.status.startswith("UP ")

    @property
    def down(self) -> bool:
        return self.status == "DOWN" or self.status.startswith("DOWN")

    @property
    def port(self) -> int | None:
        _, _, port = self.addr.rpartition(":")
        return int(port) if port.isdigit() else None


class LoadBalancer:
    """One HAProxy backend, driven through the runtime API socket."""

    def __init__(self, socket_path: Path | str, backend: str, *, timeout_s: float = 5.0,
                 name: str = "loadbalancer") -> None:
        self.socket_path = Path(socket_path)
        self.backend = backend
        self.timeout_s = timeout_s
        self.name = name

    def command(self, line: str) -> str:
        """Send one runtime command and return HAProxy's whole answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout_s)
                s.connect(str(self.socket_path))
                s.sendall(line.encode() + b"\n")
                chunks: list[bytes] = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise TargetUnreachable(
                f"load balancer {self.name} runtime API ({self.socket_path}) unreachable: "
                f"{exc.strerror or exc}") from exc
        return b"".join(chunks).decode(errors="replace")

    def _set(self, server: str, what: str) -> str:
        answer = self.command(f"set server {self.backend}/{server} {what}").strip()
        if answer and not answer.lower().startswith(_OK_ANSWERS):
            raise CommandRejected(f"HAProxy refused `set server {self.backend}/{server} {what}`: "
                                  f"{answer.splitlines()[0]}")
        return answer

    # -- reading -------------------------------------------------------------------------------

    def servers(self) -> dict[str, ServerView]:
        """Every server of the backend, by name, from ``show stat``."""
        text = self.command("show stat")
        if not text.startswith("# "):
            raise CommandRejected(f"unexpected answer to `show stat`: {text[:120]!r}")
        rows = csv.DictReader(io.StringIO(text[2:]))
        out: dict[str, ServerView] = {}
        for row in rows:
            if row.get("pxname") != self.backend or row.get("svname") in ("FRONTEND", "BACKEND"):
                continue
            name = row["svname"]
            out[name] = ServerView(
                name=name, status=row.get("status", ""), backup=row.get("bck") == "1",
                addr=row.get("addr", ""), current_sessions=_int(row.get("scur")),
                total_sessions=_int(row.get("stot")), check=row.get("check_status", ""),
                last_change_s=_int(row.get("lastchg")))
        if not out:
            raise CommandRejected(f"HAProxy has no backend {self.backend!r} with servers")
        return out

    def server(self, name: str) -> ServerView:
        found = self.servers()
        if name not in found:
            raise CommandRejected(f"backend {self.backend} has no server {name!r} "
                                  f"(servers: {', '.join(found)})")
        return found[name]

    # -- acting --------------------------------------------------------------------------------

    def set_state(self, server: str, state: str) -> None:
        """Operator's switch: ``ready`` (back in rotation), ``drain`` (finish current sessions,
        take no new ones), ``maint`` (out of rotation, checks stopped)."""
        if state not in ADMIN_STATES:
            raise ValueError(f"state must be one of {ADMIN_STATES}, not {state!r}")
        self._set(server, f"state {state}")

    def set_address(self, server: str, host: str, port: int) -> None:
        """Point a server slot at another address (a replica rescheduled elsewhere)."""
        self._set(server, f"addr {host} port {port}")

    def wait_for(self, server: str, want: str, timeout_s: float,
                 interval_s: float = 0.1) -> ServerView:
        """Poll until the server is ``UP`` or ``DOWN`` (as its health checks decide); returns the
        last view either way, so the caller can tell a timeout from success."""
        if want not in ("UP", "DOWN"):
            raise ValueError("want must be UP or DOWN")
        deadline = time.monotonic() + timeout_s
        while True:
            view = self.server(server)
            if (view.up if want == "UP" else view.down) or time.monotonic() >= deadline:
                return view
            time.sleep(interval_s)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0
