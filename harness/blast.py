"""The declared blast radius: what one drill may touch, in which target.

A scenario declares, before anything runs, every resource its inject, runbook and revert will
write: an S3 prefix, a database, a node, a job, an account. The runner checks that every declared
target is marked ``drill_safe``, takes a lease on each declared resource (so no other driller can
touch it meanwhile), fences the adapters to these resources for the drill, and prints the
declaration in the evidence. Anything written outside it is refused by the adapter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from harness.errors import GuardRefused


class TouchKind(str, Enum):
    """The kinds of resource a drill can touch."""

    S3_PREFIX = "s3-prefix"  # scope: "bucket/prefix" (prefix may be empty: the whole bucket)
    DATABASE = "database"  # scope: database name on a PostgreSQL target
    NODE = "node"  # scope: node name (a lab node process, a Kubernetes node)
    JOB = "job"  # scope: job name (backup or replication job)
    ACCOUNT = "account"  # scope: a service account / user id on an admin target
    POOL = "pool"  # scope: a load balancer backend
    QUOTA = "quota"  # scope: the bucket whose quota is changed, on an rgw-admin target
    SERVICE = "service"  # scope: a control service's state (an orchestrator's placements)


@dataclass(frozen=True)
class Touch:
    """One resource inside one inventory target that a drill may change."""

    target: str
    kind: TouchKind
    scope: str

    @property
    def resource(self) -> str:
        """A stable name for the resource, the same for every driller of the site: the lease key."""
        return f"{self.target}/{self.kind.value}/{self.scope}"

    def describe(self) -> str:
        return f"{self.kind.value} {self.scope!r} in target {self.target!r}"

    def covers_key(self, bucket: str, key: str) -> bool:
        """True when an S3 write to bucket/key falls inside this declared prefix."""
        if self.kind is not TouchKind.S3_PREFIX:
            return False
        b, _, prefix = self.scope.partition("/")
        return b == bucket and key.startswith(prefix)

    @staticmethod
    def s3(target: str, bucket: str, prefix: str = "") -> Touch:
        return Touch(target, TouchKind.S3_PREFIX, f"{bucket}/{prefix}")

    @staticmethod
    def database(target: str, name: str) -> Touch:
        return Touch(target, TouchKind.DATABASE, name)


def overlaps(a: Touch, b: Touch) -> bool:
    """True when two declared resources could touch the same data (one prefix inside the other,
    or the same database/node/job/account/pool)."""
    if a.target != b.target or a.kind is not b.kind:
        return False
    if a.kind is TouchKind.S3_PREFIX:
        ab, _, ap = a.scope.partition("/")
        bb, _, bp = b.scope.partition("/")
        return ab == bb and (ap.startswith(bp) or bp.startswith(ap))
    return a.scope == b.scope


def describe_all(touches: Iterable[Touch]) -> str:
    return "; ".join(t.describe() for t in touches) or "nothing declared"


class Fence:
    """The declared blast radius as the adapters see it during a drill: a write outside it is
    refused with GuardRefused before it reaches the system.

    ``scratch`` are places the engine itself writes that hold no asset data: the drill's own
    folder in the safety bucket, scratch databases named with a trailing ``*`` as a prefix.
    Reads are never fenced. Fenced today: S3 writes (put, upload, delete, copy, bucket
    creation) and PostgreSQL writes (create, drop, restore, statements that change data).
    """

    def __init__(self, touches: Iterable[Touch], scratch: Iterable[Touch] = ()) -> None:
        self.touches = tuple(touches)
        self.scratch = tuple(scratch)

    def _all(self) -> tuple[Touch, ...]:
        return self.touches + self.scratch

    def _refuse(self, what: str, target: str) -> GuardRefused:
        return GuardRefused(f"refused {what} on target {target!r}: outside the drill's declared "
                            f"blast radius ({describe_all(self.touches)})")

    def check_s3(self, target: str, bucket: str, key: str) -> None:
        if not any(t.target == target and t.covers_key(bucket, key) for t in self._all()):
            raise self._refuse(f"a write to s3://{bucket}/{key}", target)

    def check_bucket(self, target: str, bucket: str) -> None:
        """Creating or configuring a bucket: only one the declaration names."""
        if not any(t.target == target and t.kind is TouchKind.S3_PREFIX
                   and t.scope.partition("/")[0] == bucket for t in self._all()):
            raise self._refuse(f"a change to bucket {bucket}", target)

    def check_database(self, target: str, name: str) -> None:
        for t in self._all():
            if t.target != target or t.kind is not TouchKind.DATABASE:
                continue
            if t.scope == name or (t.scope.endswith("*") and name.startswith(t.scope[:-1])):
                return
        raise self._refuse(f"a write to database {name!r}", target)
