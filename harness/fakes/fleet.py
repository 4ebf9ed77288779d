"""An in-memory serving fleet for unit tests: nodes, the orchestrator that places replicas on
them, the load balancer in front, the frontend clients reach through it, and a load source.

One :class:`FakeFleet` holds the state; the adapters are views of it that implement the protocols
of harness/targets/protocols.py and harness/runbook/fleet.py with the meaning of the real ones (harness/targets/fleet.py,
loadbalancer.py, inference.py, harness/load.py). Time is the drill's clock (a ``ManualClock`` in
unit tests): the fleet moves when it is looked at, by what the clock says has passed. A replica on
a node that is off or frozen is moved by the orchestrator after ``reschedule_s`` to another running
node, where it pulls and loads for ``load_s``; the balancer's slot follows it (the lab's
controller does the same through the runtime API); a replica away from home goes back once its
home node runs again. A server is UP while its replica serves and it is in rotation; the backup
servers (the fallback pool) always serve the fallback model.

The load source makes one sample per clock second that has passed, from how the fleet routed
traffic in the middle of that second (the fleet records every change, as the drill looks): full throughput at low latency when every primary serves, proportionally less with fewer,
the fallback's slower, smaller service when only backups serve, all failures when nothing does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from harness.errors import TargetUnreachable
from harness.inventory import InferenceTarget
from harness.journal import Clock
from harness.load import LoadProfile, SecondSample
from harness.targets.fleet import FleetView, ReplicaView
from harness.targets.inference import Readiness
from harness.targets.loadbalancer import ADMIN_STATES, CommandRejected, ServerView

Model = Callable[[list[list[float]]], list[list[float]]]

#: Requests each load user completes per second against a healthy fleet, and their latencies.
USER_RPS, PRIMARY_MS, FALLBACK_MS, FALLBACK_CAPACITY = 10, 20.0, 200.0, 0.3


@dataclass
class _Replica:
    home: str
    node: str
    port: int
    pending: str | None = None
    moving_at: float | None = None  # when the orchestrator acts (or the move lands)
    ready_at: float = 0.0


class FakeFleet:
    def __init__(self, clock: Clock, *, nodes: list[str], primary: Model, fallback: Model,
                 files: dict[str, str], backups: tuple[str, ...] = ("fallback-1",),
                 reschedule_s: float = 2.0, load_s: float = 3.0) -> None:
        self.clock = clock
        self.primary, self.fallback = primary, fallback
        #: path -> SHA-256 of the weights every replica loads (what ``node_state`` reports)
        self.files = dict(files)
        self.reschedule_s, self.load_s = reschedule_s, load_s
        self.nodes = {n: "running" for n in nodes}
        self._ports = 9000
        self.replicas = {f"replica-{i + 1}": _Replica(n, n, self._port())
                         for i, n in enumerate(nodes)}
        self.admin = {name: "ready" for name in [*self.replicas, *backups]}
        self.backups = tuple(backups)
        self.sessions = {name: 0 for name in self.admin}
        #: when set, a replica that (re)loads reports these file hashes instead (corrupt weights)
        self.corrupt_loads: dict[str, str] | None = None
        self._loaded: dict[str, dict[str, str]] = {r: dict(files) for r in self.replicas}
        #: (clock, primaries taking traffic, backups taking traffic) at every change
        self.history: list[tuple[float, int, int]] = []
        self._record()

    def _port(self) -> int:
        self._ports += 1
        return self._ports

    # -- the simulation ---------------------------------------------------------------------------

    def tick(self) -> None:
        """Apply every move whose time has come."""
        self._moves()
        self._record()

    def _record(self) -> None:
        now = self.clock.mono()
        primaries = sum(1 for n, r in self.replicas.items() if self.admin[n] == "ready"
                        and self.nodes[r.node] == "running" and now >= r.ready_at)
        backups = sum(1 for b in self.backups if self.admin[b] == "ready")
        if not self.history or self.history[-1][1:] != (primaries, backups):
            self.history.append((now, primaries, backups))

    def routing_at(self, mono: float) -> tuple[int, int]:
        """(primaries, backups) taking traffic at an instant already past."""
        self.tick()
        state = self.history[0][1:]
        for at, primaries, backups in self.history:
            if at > mono:
                break
            state = (primaries, backups)
        return state

    def _moves(self) -> None:
        now = self.clock.mono()
        for name, r in self.replicas.items():
            if r.pending is not None:
                if r.moving_at is not None and now >= r.moving_at:
                    self._land(name, r, now)
                continue
            target = None
            if self.nodes[r.node] != "running":
                target = next((n for n in self.nodes if self.nodes[n] == "running"
                               and n != r.node), None)
            elif r.node != r.home and self.nodes[r.home] == "running":
                target = r.home
            if target is None:
                r.moving_at = None
                continue
            if r.moving_at is None:
                r.moving_at = now + (self.reschedule_s if target != r.home else 0.0)
            elif now >= r.moving_at:
                r.pending, r.moving_at = target, now + self.load_s

    def _land(self, name: str, r: _Replica, now: float) -> None:
        assert r.pending is not None
        if self.nodes[r.pending] != "running":
            r.pending, r.moving_at = None, None
            return
        r.node, r.pending, r.moving_at, r.port = r.pending, None, None, self._port()
        r.ready_at = now
        self._loaded[name] = dict(self.corrupt_loads or self.files)

    def node_changed(self, node: str, state: str) -> None:
        before, self.nodes[node] = self.nodes[node], state
        if before == "off" and state == "running":  # its replicas' processes start again
            for name, r in self.replicas.items():
                if r.node == node:
                    r.ready_at = self.clock.mono() + self.load_s
                    self._loaded[name] = dict(self.corrupt_loads or self.files)
        self._record()

    def serving(self, name: str) -> bool:
        """Does this replica answer requests now?"""
        self.tick()
        r = self.replicas[name]
        return self.nodes[r.node] == "running" and self.clock.mono() >= r.ready_at

    def in_rotation(self) -> tuple[list[str], list[str]]:
        """(primaries, backups) taking traffic now, as the balancer routes it."""
        primaries = [s for s in self.replicas if self.admin[s] == "ready" and self.serving(s)]
        backups = [b for b in self.backups if self.admin[b] == "ready"]
        return primaries, backups

    # -- adapters ---------------------------------------------------------------------------------

    def balancer(self) -> FakeLoadBalancer:
        return FakeLoadBalancer(self)

    def orchestrator(self) -> FakeOrchestrator:
        return FakeOrchestrator(self)

    def node(self, name: str) -> FakeNodeHost:
        return FakeNodeHost(self, name)

    def frontend(self, target: InferenceTarget) -> FakeFrontend:
        return FakeFrontend(self, target)


class FakeNodeHost:
    def __init__(self, fleet: FakeFleet, name: str) -> None:
        self.fleet, self.name = fleet, name

    def state(self) -> str:
        return self.fleet.nodes[self.name]

    def crash(self) -> None:
        if self.state() == "off":
            raise TargetUnreachable(f"node {self.name} is off")
        self.fleet.node_changed(self.name, "off")

    def freeze(self) -> None:
        if self.state() == "off":
            raise TargetUnreachable(f"node {self.name} is off")
        self.fleet.node_changed(self.name, "stopped")

    def thaw(self) -> None:
        if self.state() == "off":
            raise TargetUnreachable(f"node {self.name} is off")
        self.fleet.node_changed(self.name, "running")

    def wait_off(self, timeout_s: float) -> bool:
        return self.state() == "off"

    def power_on(self, timeout_s: float) -> None:
        if self.state() == "off":
            self.fleet.node_changed(self.name, "running")


class FakeOrchestrator:
    def __init__(self, fleet: FakeFleet) -> None:
        self.fleet = fleet

    def view(self) -> FleetView:
        f = self.fleet
        f.tick()
        return FleetView(
            {n: s == "running" for n, s in f.nodes.items()},
            {n: ReplicaView(n, r.home, r.node, r.port, r.pending) for n, r in f.replicas.items()},
            f.clock.utc().isoformat())

    def endpoint(self, replica: ReplicaView, model: str) -> FakeReplica:
        return FakeReplica(self.fleet, replica, model)


class FakeLoadBalancer:
    def __init__(self, fleet: FakeFleet) -> None:
        self.fleet = fleet

    def servers(self) -> dict[str, ServerView]:
        f = self.fleet
        out = {}
        for name, r in f.replicas.items():
            status = "MAINT" if f.admin[name] == "maint" else "UP" if f.serving(name) else "DOWN"
            out[name] = ServerView(name, status, False, f"127.0.0.1:{r.port}", 0,
                                   f.sessions[name], "L7OK" if status == "UP" else "L4CON", 0)
        for b in f.backups:
            status = "MAINT" if f.admin[b] == "maint" else "UP"
            out[b] = ServerView(b, status, True, "127.0.0.1:8900", 0, f.sessions[b], "L7OK", 0)
        return out

    def server(self, name: str) -> ServerView:
        found = self.servers()
        if name not in found:
            raise CommandRejected(f"backend has no server {name!r}")
        return found[name]

    def set_state(self, server: str, state: str) -> None:
        if state not in ADMIN_STATES:
            raise ValueError(f"state must be one of {ADMIN_STATES}, not {state!r}")
        self.server(server)
        self.fleet.admin[server] = "maint" if state == "maint" else "ready"
        self.fleet.tick()

    def wait_for(self, server: str, want: str, timeout_s: float,
                 interval_s: float = 0.1) -> ServerView:
        if want not in ("UP", "DOWN"):
            raise ValueError("want must be UP or DOWN")
        clock = self.fleet.clock
        deadline = clock.mono() + timeout_s
        while True:
            view = self.server(server)
            if (view.up if want == "UP" else view.down) or clock.mono() >= deadline:
                return view
            clock.sleep(interval_s)


class FakeReplica:
    """One replica's own endpoint, at the port the orchestrator gave it."""

    def __init__(self, fleet: FakeFleet, replica: ReplicaView, model: str) -> None:
        self.fleet, self.replica = fleet, replica
        self.target = InferenceTarget(f"replica {replica.name}", replica.url, model, False)

    def _answering(self) -> None:
        f, name = self.fleet, self.replica.name
        if not f.serving(name) or f.replicas[name].port != self.replica.port:
            raise TargetUnreachable(f"inference endpoint {self.target.name} ({self.target.url}) "
                                    f"unreachable: connection refused")

    def readiness(self) -> Readiness:
        self._answering()
        return Readiness(True, 200, "")

    def infer(self, inputs: list[list[float]]) -> list[list[float]]:
        self._answering()
        return self.fleet.primary(inputs)

    def node_state(self) -> dict[str, Any]:
        self._answering()
        loaded = self.fleet._loaded[self.replica.name]
        return {"files": [{"path": p, "sha256": s} for p, s in sorted(loaded.items())]}


class FakeFrontend:
    """What clients reach through the balancer; it also makes the drill's load (it implements
    :class:`harness.runbook.fleet.GeneratesLoad`)."""

    def __init__(self, fleet: FakeFleet, target: InferenceTarget) -> None:
        self.fleet, self.target = fleet, target

    def infer(self, inputs: list[list[float]]) -> list[list[float]]:
        primaries, backups = self.fleet.in_rotation()
        if primaries:
            self.fleet.sessions[primaries[0]] += 1
            return self.fleet.primary(inputs)
        if backups:
            self.fleet.sessions[backups[0]] += 1
            return self.fleet.fallback(inputs)
        raise TargetUnreachable("infer answered HTTP 503: no server available")

    def readiness(self) -> Readiness:
        return Readiness(any(self.fleet.in_rotation()), 200, "")

    def node_state(self) -> dict[str, Any]:
        return {}

    def load_source(self, profile: LoadProfile, label: str) -> FakeLoad:
        return FakeLoad(self.fleet, profile)


class FakeLoad:
    """Per-second samples of ``profile.users`` users against the fleet, on the drill's clock:
    ``wait`` lets the clock run to the end of the run, ``samples`` reports the seconds that
    have passed."""

    def __init__(self, fleet: FakeFleet, profile: LoadProfile) -> None:
        self.fleet, self.profile = fleet, profile
        self._start: float | None = None
        self._stopped: float | None = None
        self._samples: list[SecondSample] = []

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        self._catch_up()
        return self._start is not None and self._stopped is None and \
            self.fleet.clock.mono() < self._start + self.profile.duration_s

    def start(self) -> None:
        self._start = self.fleet.clock.mono()

    def _catch_up(self) -> None:
        """One sample for every whole second of the run that has passed."""
        if self._start is None:
            return
        clock = self.fleet.clock
        end = min(clock.mono(), self._start + self.profile.duration_s,
                  self._stopped if self._stopped is not None else clock.mono())
        while self._start + len(self._samples) + 1 <= end + 1e-9:
            begin = self._start + len(self._samples)
            utc = clock.utc() - timedelta(seconds=clock.mono() - begin)
            self._samples.append(self._second(utc, begin + 0.5))

    def _second(self, utc: datetime, middle: float) -> SecondSample:
        """The second's requests as the fleet routed them at its middle."""
        primaries, backups = self.fleet.routing_at(middle)
        wanted = self.profile.users * USER_RPS
        if primaries:
            answered = round(wanted * primaries / len(self.fleet.replicas))
            ms = PRIMARY_MS
        elif backups:
            answered, ms = round(wanted * FALLBACK_CAPACITY), FALLBACK_MS
            self.fleet.sessions[self.fleet.backups[0]] += answered
        else:
            return SecondSample(utc, wanted, wanted, None, None, None,
                                errors=(("connection refused", wanted),))
        return SecondSample(utc, answered, 0, ms, ms, ms, histogram=((ms, answered),))

    def samples(self) -> list[SecondSample]:
        self._catch_up()
        return list(self._samples)

    def wait(self, timeout_s: float | None = None) -> list[SecondSample]:
        assert self._start is not None, "wait() before start()"
        clock = self.fleet.clock
        while self.running:
            clock.sleep(1.0)
        return self.samples()

    def stop(self) -> list[SecondSample]:
        self._catch_up()
        if self._stopped is None:
            self._stopped = self.fleet.clock.mono()
        return list(self._samples)
