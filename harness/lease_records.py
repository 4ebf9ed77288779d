"""Lease records: one lease as stored in a target system, read back and classified.

A :class:`LeaseRecord` is the JSON a drill writes for each resource it declares (who, where,
which phase, which safety copies); :func:`read_lease` and :func:`list_leases` read them back as
:class:`FoundLease`, HELD while the holder renews and ORPHAN once it is known to be gone
(:func:`classify`). Taking, renewing and releasing leases is :mod:`harness.lease`; where they are
kept is :mod:`harness.lease_stores`.
"""

from __future__ import annotations

import enum
import json
import os
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from harness.blast import Touch, TouchKind
from harness.lease_stores import LeaseStore
from harness.model import iso, parse_iso, utc_now

LEASE_FORMAT = "drillbook-lease/1"
#: Keys of the recovery records `drillbook recover` leaves next to the leases.
RECOVERY_PREFIX = "recovered/"



class LeaseState(enum.Enum):
    HELD = "held"
    ORPHAN = "orphan"


@dataclass(frozen=True)
class SafetyRecord:
    """A safety copy a drill took: kind ``s3-versions`` (location s3://bucket/root/) or
    ``pg-dump`` (location a file path on ``host``), and what recover needs to put it back."""

    kind: str
    location: str
    detail: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def from_json(d: dict[str, Any]) -> SafetyRecord:
        return SafetyRecord(str(d["kind"]), str(d["location"]), dict(d.get("detail", {})))


@dataclass(frozen=True)
class LeaseRecord:
    """One lease as stored (JSON)."""

    touch: Touch
    drill_id: str
    scenario: str
    variant: str
    asset: str
    host: str
    pid: int
    started: datetime
    renewed: datetime
    expires: datetime
    evidence_dir: str
    phase: str
    token: str
    safety_copies: tuple[SafetyRecord, ...] = ()
    #: set when `drillbook recover` took the orphan over: the dead holder's host, pid, phase
    orphaned_from: dict[str, Any] | None = None

    @property
    def resource(self) -> str:
        return self.touch.resource

    def holder(self) -> str:
        return f"drill {self.drill_id} since {iso(self.started)} ({self.host}, pid {self.pid})"

    def to_bytes(self) -> bytes:
        d = asdict(self)
        d["touch"] = {"target": self.touch.target, "kind": self.touch.kind.value,
                      "scope": self.touch.scope}
        for k in ("started", "renewed", "expires"):
            d[k] = iso(getattr(self, k))
        return json.dumps({"format": LEASE_FORMAT, **d}, indent=1).encode()

    @staticmethod
    def from_bytes(raw: bytes) -> LeaseRecord:
        d = json.loads(raw)
        t = d["touch"]
        return LeaseRecord(
            touch=Touch(str(t["target"]), TouchKind(t["kind"]), str(t["scope"])),
            drill_id=str(d["drill_id"]), scenario=str(d["scenario"]), variant=str(d["variant"]),
            asset=str(d["asset"]), host=str(d["host"]), pid=int(d["pid"]),
            started=parse_iso(d["started"]), renewed=parse_iso(d["renewed"]),
            expires=parse_iso(d["expires"]), evidence_dir=str(d["evidence_dir"]),
            phase=str(d["phase"]), token=str(d["token"]),
            safety_copies=tuple(SafetyRecord.from_json(s) for s in d.get("safety_copies", [])),
            orphaned_from=d.get("orphaned_from"))


@dataclass(frozen=True)
class FoundLease:
    """A lease read from a store, with its tag and its state."""

    record: LeaseRecord
    tag: str
    store: LeaseStore
    state: LeaseState
    why: str  # why it is an orphan ("" when held)

    def describe(self) -> str:
        r = self.record
        if self.state is LeaseState.HELD:
            return f"{r.resource}: held by {r.holder()}, phase {r.phase}"
        return f"{r.resource}: ORPHAN of {r.holder()}, died at {r.phase} ({self.why})"


def this_host() -> str:
    return socket.gethostname()


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def classify(record: LeaseRecord, store: LeaseStore, now: datetime) -> tuple[LeaseState, str]:
    """HELD while its holder renews it; ORPHAN once it expired, or as soon as its holder is
    known to be gone (its process on this host has exited; no session holds its advisory lock)."""
    if record.expires <= now:
        return LeaseState.ORPHAN, f"not renewed since {iso(record.renewed)}, expired"
    if record.host == this_host() and not pid_running(record.pid):
        return LeaseState.ORPHAN, f"process {record.pid} on this host has exited"
    if store.holder_alive(record.resource) is False:
        return LeaseState.ORPHAN, f"no live session holds it on {store.where}"
    return LeaseState.HELD, ""


def read_lease(store: LeaseStore, key: str, now: datetime | None = None) -> FoundLease | None:
    """The holder of one lease, or None when it is free."""
    got = store.get(key)
    if got is None:
        return None
    record = LeaseRecord.from_bytes(got[0])
    state, why = classify(record, store, now or utc_now())
    return FoundLease(record, got[1], store, state, why)


def list_leases(stores: Iterable[LeaseStore], now: datetime | None = None) -> list[FoundLease]:
    """Every lease in these stores (held and orphaned)."""
    out = []
    for store in stores:
        for key in store.list_keys():
            if key.startswith(RECOVERY_PREFIX):
                continue
            found = read_lease(store, key, now)
            if found is not None:
                out.append(found)
    return out
