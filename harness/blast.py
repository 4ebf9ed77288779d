"""The declared blast radius: what one drill may touch, in which target.

A scenario declares, before anything runs, every resource its inject, runbook and revert will
write: an S3 prefix, a database, a node, a job, an account. The runner checks that every declared
target is marked ``drill_safe``, takes a lease on each declared resource (so no other driller can
touch it meanwhile), fences the adapters to these resources for the drill, and prints the
declaration in the evidence. Anything written outside it is refused by the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class TouchKind(str, Enum):
    """The kinds of resource a drill can touch."""

    S3_PREFIX = "s3-prefix"  # scope: "bucket/prefix" (prefix may be empty: the whole bucket)
    DATABASE = "database"  # scope: database name on a PostgreSQL target
    NODE = "node"  # scope: node name (a lab node process, a Kubernetes node)
    JOB = "job"  # scope: job name (backup or replication job)
    ACCOUNT = "account"  # scope: a service account / user id on an admin target
    POOL = "pool"  # scope: a load balancer backend


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
