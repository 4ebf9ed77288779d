"""Where drill leases are kept: one small compare-and-swap interface, three implementations.

- :class:`S3LeaseStore`: one JSON object per lease under ``drillbook-leases/`` in the
  inventory's safety bucket on an S3 target. Created with ``If-None-Match: *`` and renewed with
  ``If-Match: <etag>``; Ceph RGW 16 honours both (checked on the lab: of eight threads creating
  the same lease at once, exactly one succeeds, every time).
- :class:`PostgresLeaseStore`: a row per lease in the ``drillbook_leases`` table of the server's
  maintenance database (``INSERT ... ON CONFLICT DO NOTHING``, ``UPDATE ... WHERE tag = old``),
  plus a session-level advisory lock the holder keeps while it lives: a row whose lock nobody
  holds belongs to a holder that is gone.
- :class:`MemoryLeaseStore`: the in-memory fake the unit tests use; it passes the same contract
  tests as the other two.

A tag is the store's version of a lease (an ETag, a counter): a write that names a stale tag
fails, so two processes can never both think they hold, renew or release the same lease.
"""

from __future__ import annotations

import itertools
import threading
import urllib.parse
from typing import Any, Protocol

import psycopg

from harness.errors import TargetUnreachable
from harness.targets.database import Database
from harness.targets.s3 import S3Store

LEASE_PREFIX = "drillbook-leases/"
LEASE_TABLE = "drillbook_leases"


class LeaseStore(Protocol):
    """A tiny key-value store with create-if-absent and compare-and-swap."""

    @property
    def where(self) -> str:
        """Where the leases live, for messages (``s3://bucket/prefix on target``)."""
        ...

    def create(self, key: str, data: bytes) -> str | None:
        """Store ``data`` under ``key`` unless it exists; the new tag, or None if it existed."""
        ...

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The lease's data and tag, or None."""
        ...

    def replace(self, key: str, data: bytes, tag: str) -> str | None:
        """Overwrite only if the lease still has ``tag``; the new tag, or None."""
        ...

    def remove(self, key: str, tag: str) -> bool:
        """Delete only if the lease still has ``tag``; False when it changed or is gone."""
        ...

    def list_keys(self) -> list[str]:
        ...

    def hold(self, key: str) -> bool:
        """Mark the lease as held by this live process, where the store can (an advisory lock).
        False when another live process holds it."""
        ...

    def unhold(self, key: str) -> None:
        ...

    def holder_alive(self, key: str) -> bool | None:
        """Whether a live process holds the lease; None when the store cannot tell."""
        ...


class MemoryLeaseStore:
    """In-memory, thread-safe; the fake for unit tests."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._data: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        self._tags = itertools.count(1)

    @property
    def where(self) -> str:
        return f"memory:{self.name}"

    def create(self, key: str, data: bytes) -> str | None:
        with self._lock:
            if key in self._data:
                return None
            tag = str(next(self._tags))
            self._data[key] = (data, tag)
            return tag

    def get(self, key: str) -> tuple[bytes, str] | None:
        with self._lock:
            return self._data.get(key)

    def replace(self, key: str, data: bytes, tag: str) -> str | None:
        with self._lock:
            if key not in self._data or self._data[key][1] != tag:
                return None
            new = str(next(self._tags))
            self._data[key] = (data, new)
            return new

    def remove(self, key: str, tag: str) -> bool:
        with self._lock:
            if key not in self._data or self._data[key][1] != tag:
                return False
            del self._data[key]
            return True

    def list_keys(self) -> list[str]:
        with self._lock:
            return sorted(self._data)

    def hold(self, key: str) -> bool:
        return True

    def unhold(self, key: str) -> None:
        return None

    def holder_alive(self, key: str) -> bool | None:
        return None


class S3LeaseStore:
    """Leases as objects in a bucket of the store they protect."""

    def __init__(self, store: S3Store, bucket: str) -> None:
        self.store = store
        self.bucket = bucket
        self._bucket_ready = False

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{LEASE_PREFIX} on {self.store.target.name}"

    @staticmethod
    def object_key(key: str) -> str:
        return LEASE_PREFIX + urllib.parse.quote(key, safe="") + ".json"

    def _ready(self) -> None:
        if not self._bucket_ready:
            self.store.ensure_bucket(self.bucket, versioned=False)
            self._bucket_ready = True

    def create(self, key: str, data: bytes) -> str | None:
        self._ready()
        return self.store.put_conditional(self.bucket, self.object_key(key), data)

    def get(self, key: str) -> tuple[bytes, str] | None:
        try:
            return self.store.read_with_etag(self.bucket, self.object_key(key))
        except Exception as exc:
            if _no_bucket(exc):
                return None
            raise

    def replace(self, key: str, data: bytes, tag: str) -> str | None:
        return self.store.put_conditional(self.bucket, self.object_key(key), data, if_match=tag)

    def remove(self, key: str, tag: str) -> bool:
        # RGW 16 has no conditional DELETE: check the tag, then delete (a narrow window, and
        # only a holder or `recover`, which has taken the lease over, ever removes one)
        now = self.get(key)
        if now is None or now[1] != tag:
            return False
        self.store.delete(self.bucket, self.object_key(key))
        return True

    def list_keys(self) -> list[str]:
        try:
            found = self.store.list_keys(self.bucket, LEASE_PREFIX)
        except Exception as exc:
            if _no_bucket(exc):
                return []
            raise
        return sorted(urllib.parse.unquote(k[len(LEASE_PREFIX):-len(".json")])
                      for k in found if k.endswith(".json"))

    def hold(self, key: str) -> bool:
        return True

    def unhold(self, key: str) -> None:
        return None

    def holder_alive(self, key: str) -> bool | None:
        return None


def _no_bucket(exc: Exception) -> bool:
    if getattr(exc, "code", None) == "NoSuchBucket":  # S3Store's StoreError
        return True
    response: Any = getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") == "NoSuchBucket"


class PostgresLeaseStore:
    """Leases as rows in the server they protect, with an advisory lock per live holder."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._table_ready = False
        self._held: dict[str, psycopg.Connection[Any]] = {}

    @property
    def where(self) -> str:
        return f"table {LEASE_TABLE} on {self.db.where}"

    def _ready(self) -> None:
        if self._table_ready:
            return
        with self.db.connect() as conn:
            try:
                conn.execute(f"CREATE TABLE IF NOT EXISTS {LEASE_TABLE} (key text PRIMARY KEY, "
                             "data text NOT NULL, tag bigint NOT NULL)")
            except psycopg.errors.UniqueViolation:
                pass  # another driller created it at the same instant
        self._table_ready = True

    def create(self, key: str, data: bytes) -> str | None:
        self._ready()
        with self.db.connect() as conn:
            row = conn.execute(f"INSERT INTO {LEASE_TABLE} (key, data, tag) VALUES (%s, %s, 1) "
                               "ON CONFLICT (key) DO NOTHING RETURNING tag",
                               (key, data.decode())).fetchone()
        return None if row is None else str(row[0])

    def get(self, key: str) -> tuple[bytes, str] | None:
        with self.db.connect() as conn:
            try:
                row = conn.execute(f"SELECT data, tag FROM {LEASE_TABLE} WHERE key = %s",
                                   (key,)).fetchone()
            except psycopg.errors.UndefinedTable:
                return None  # no drill ever leased anything here (reads never create it)
        return None if row is None else (str(row[0]).encode(), str(row[1]))

    def replace(self, key: str, data: bytes, tag: str) -> str | None:
        self._ready()
        with self.db.connect() as conn:
            row = conn.execute(f"UPDATE {LEASE_TABLE} SET data = %s, tag = tag + 1 "
                               "WHERE key = %s AND tag = %s RETURNING tag",
                               (data.decode(), key, int(tag))).fetchone()
        return None if row is None else str(row[0])

    def remove(self, key: str, tag: str) -> bool:
        self._ready()
        with self.db.connect() as conn:
            cur = conn.execute(f"DELETE FROM {LEASE_TABLE} WHERE key = %s AND tag = %s",
                               (key, int(tag)))
            return cur.rowcount == 1

    def list_keys(self) -> list[str]:
        with self.db.connect() as conn:
            try:
                rows = conn.execute(f"SELECT key FROM {LEASE_TABLE} ORDER BY key").fetchall()
            except psycopg.errors.UndefinedTable:
                return []
        return [str(r[0]) for r in rows]

    def hold(self, key: str) -> bool:
        if key in self._held:
            return True
        t = self.db.target
        try:
            conn = psycopg.connect(host=t.host, port=t.port, user=t.user,
                                   password=t.password.value, dbname="postgres", autocommit=True,
                                   connect_timeout=self.db.connect_timeout,
                                   application_name="drillbook-lease")
        except psycopg.OperationalError as exc:
            raise TargetUnreachable(f"database server {self.db.where} unreachable: "
                                    f"{str(exc).strip().splitlines()[-1]}") from exc
        row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                           (key,)).fetchone()
        if not (row and row[0]):
            conn.close()
            return False
        self._held[key] = conn
        return True

    def unhold(self, key: str) -> None:
        conn = self._held.pop(key, None)
        if conn is not None:
            conn.close()  # ending the session releases its advisory locks

    def holder_alive(self, key: str) -> bool | None:
        with self.db.connect() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks l, (SELECT hashtextextended(%s, 0) AS k) h "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid = ((h.k >> 32) & 4294967295)::oid "
                "AND l.objid = (h.k & 4294967295)::oid)", (key,)).fetchone()
        return bool(row and row[0])
