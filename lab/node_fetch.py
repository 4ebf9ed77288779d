"""Fetching a model the way a serving runtime does: parallel ranged GETs, hashed as the bytes
arrive, never read twice, into buffers the caller gives (the node's are its cache files, mapped).

Each object is cut into ranges of :data:`RANGE_BYTES`; :data:`FETCH_THREADS` ranges, of every
file together, are on the wire at once, each received straight into its place in the file's
buffer. A file's SHA-256 follows the bytes in order: whichever worker completes the range the
hash is waiting for also hashes every range after it that has already arrived. So when the last
range lands the digest is one range behind at most, and the bytes the node serves are exactly
the bytes that were hashed (the buffer is made read-only once verified and the weights are
views into it; when the buffer is a mapped cache file, as on the node, a process that wrote to
that file later would change what is served, as with any runtime that maps its weights: nothing
in the lab writes to a live pull's files).

Every range response must agree with the manifest on the object's total size; a disagreement,
a missing object or a cut-off range is recorded against that file (never raised), so the
evidence lists every damaged file. Two transports: presigned URLs over :mod:`http.client`
(``recv_into`` the buffer: no copy on the way, measured about 20 % faster than reading
botocore's bodies), used when the client can presign, and ``get_object(Range=...)`` otherwise
(fakes in tests).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import numpy as np
from numpy.typing import NDArray

from lab.netmanifest import ManifestFile, check_relative_path
from lab.node_pull import FileCheck, S3Like, StreamingBodyLike, describe_error, object_key

#: ranges on the wire at once, all files together (measured on the lab at 1 GiB: 8 x 16 MiB
#: fetched at 220-320 MiB/s, 4 whole-object GETs at 180 MiB/s)
FETCH_THREADS = 8
RANGE_BYTES = 16 * 1024 * 1024
#: tries per range when the connection fails (a store's refusal is not retried)
ATTEMPTS = 3
#: seconds a presigned URL stays valid: longer than any pull
URL_EXPIRY_S = 3600

Bytes = NDArray[np.uint8]
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class RangeFailed(Exception):
    """One range could not be fetched as the manifest describes it."""

    def __init__(self, message: str, *, actual_size: int | None = None) -> None:
        super().__init__(message)
        self.actual_size = actual_size


class RangeSource(Protocol):
    """Writes bytes ``[start, start + len(into))`` of ``key`` into ``into`` and returns the
    object's total size as the store reports it (an empty ``into``: one GET with no range)."""

    def fetch(self, key: str, start: int, into: memoryview) -> int: ...

    def close(self) -> None:
        """Release connections; called once the pull is over."""


def _total_of(content_range: str | None, status: int, length: int) -> int:
    if status == 200:  # the whole object, with no range applied
        return length
    m = _CONTENT_RANGE.match(content_range or "")
    if m is None or m.group(3) == "*":
        raise RangeFailed(f"store answered a range with Content-Range {content_range!r}")
    return int(m.group(3))


def _unsatisfied(content_range: str | None) -> int | None:
    """The object's size from a 416's ``Content-Range: bytes */N`` (the range asked for lies
    past the end of a shorter object), else None."""
    m = re.match(r"^bytes \*/(\d+)$", content_range or "")
    return int(m.group(1)) if m else None


class PresignedSource:
    """Ranged GETs on presigned URLs, one keep-alive connection per worker thread."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._open: list[http.client.HTTPConnection] = []  # every thread's, to close at the end

    def _url(self, key: str) -> str:
        with self._lock:
            if key not in self._urls:
                self._urls[key] = str(self._client.generate_presigned_url(
                    "get_object", Params={"Bucket": self._bucket, "Key": key},
                    ExpiresIn=URL_EXPIRY_S))
            return self._urls[key]

    def _connection(self, netloc: str, https: bool) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "netloc", None) != netloc:
            cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
            conn = cls(netloc, timeout=60)
            self._local.conn, self._local.netloc = conn, netloc
            with self._lock:
                self._open.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def fetch(self, key: str, start: int, into: memoryview) -> int:
        url = urlsplit(self._url(key))
        target = url.path + (f"?{url.query}" if url.query else "")
        headers = {"Range": f"bytes={start}-{start + len(into) - 1}"} if len(into) else {}
        for attempt in range(1, ATTEMPTS + 1):
            conn = self._connection(url.netloc, url.scheme == "https")
            try:
                conn.request("GET", target, headers=headers)
                response = conn.getresponse()
                if response.status not in (200, 206):
                    body = response.read(64 * 1024).decode(errors="replace")
                    code = re.search(r"<Code>([^<]+)</Code>", body)
                    raise RangeFailed(f"{code.group(1) if code else 'HTTP'}: "
                                      f"HTTP {response.status} for {key}",
                                      actual_size=_unsatisfied(response.getheader("Content-Range")))
                length = int(response.getheader("Content-Length") or -1)
                total = _total_of(response.getheader("Content-Range"), response.status, length)
                if response.status == 200 and start != 0:
                    raise RangeFailed(f"store ignored the range request for {key}")
                got = 0
                while got < min(len(into), length):
                    n = response.readinto(into[got:])
                    if not n:
                        break
                    got += n
                if response.status == 200 or got < length:
                    self._drop()  # bytes left unread on the connection
                if got != len(into):
                    raise RangeFailed(f"{key}: {got} bytes where {len(into)} were asked at "
                                      f"offset {start}", actual_size=total)
                return total
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if attempt == ATTEMPTS:
                    raise RangeFailed(f"{key}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")


class GetObjectSource:
    """Ranged ``get_object`` calls on any S3-like client (a fake in tests)."""

    def __init__(self, client: S3Like, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def close(self) -> None:
        pass  # the client's own pool outlives a pull

    def fetch(self, key: str, start: int, into: memoryview) -> int:
        ranged = {"Range": f"bytes={start}-{start + len(into) - 1}"} if len(into) else {}
        get = cast(Callable[..., Mapping[str, Any]], self._client.get_object)
        try:
            response = get(Bucket=self._bucket, Key=key, **ranged)
        # any client's refusal (botocore's ClientError, a fake's): described by its code
        except Exception as exc:
            headers = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPHeaders")
            raise RangeFailed(describe_error(exc), actual_size=_unsatisfied(
                (headers or {}).get("content-range"))) from exc
        body = cast(StreamingBodyLike, response["Body"])
        length = int(response.get("ContentLength", -1))
        total = _total_of(response.get("ContentRange"), 206 if "ContentRange" in response
                          else 200, length)
        got = 0
        try:
            while got < len(into):
                chunk = body.read(min(1024 * 1024, len(into) - got))
                if not chunk:
                    break
                into[got:got + len(chunk)] = chunk
                got += len(chunk)
        finally:
            close = getattr(body, "close", None)
            if callable(close):
                close()
        if got != len(into):
            raise RangeFailed(f"{key}: {got} bytes where {len(into)} were asked at offset "
                              f"{start}", actual_size=total)
        return total


def source_for(client: S3Like, bucket: str) -> RangeSource:
    """Presigned URLs when the client can make them, else ranged get_object."""
    if callable(getattr(client, "generate_presigned_url", None)):
        return PresignedSource(client, bucket)
    return GetObjectSource(client, bucket)


@dataclass
class _File:
    """One object being fetched: its buffer, its ranges, its in-order hash."""

    entry: ManifestFile
    key: str
    buf: Bytes
    ranges: list[tuple[int, int]]
    digest: Any = field(default_factory=hashlib.sha256)
    arrived: set[int] = field(default_factory=set)
    hashed: int = 0  # ranges hashed so far, in order
    hashing: bool = False  # a thread is hashing this file now
    error: str | None = None
    actual_size: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def landed(self, index: int) -> None:
        """Range ``index`` is in the buffer: hash every range now contiguous with the hash.
        One thread hashes at a time; the others go back to fetching at once."""
        with self.lock:
            self.arrived.add(index)
            if self.hashing:
                return  # the thread hashing will reach this range
            self.hashing = True
        view = self.buf.data  # the array's own buffer, as a memoryview
        while True:
            with self.lock:
                if self.hashed not in self.arrived:
                    self.hashing = False
                    return
                start, end = self.ranges[self.hashed]
            self.digest.update(view[start:end])  # releases the GIL: the others keep receiving
            with self.lock:
                self.hashed += 1

    def failed(self, message: str, actual_size: int | None) -> None:
        with self.lock:
            if self.error is None:
                self.error, self.actual_size = message, actual_size

    def check(self) -> FileCheck:
        e = self.entry
        if self.error is None and self.hashed != len(self.ranges):
            self.error = f"{len(self.ranges) - self.hashed} range(s) never arrived"
        if self.error is not None:
            size_known = self.actual_size is not None
            return FileCheck(path=e.path, expected_sha256=e.sha256, actual_sha256=None,
                             size_ok=size_known and self.actual_size == e.size, ok=False,
                             expected_size=e.size, actual_size=self.actual_size,
                             error=self.error)
        actual = self.digest.hexdigest()
        return FileCheck(path=e.path, expected_sha256=e.sha256, actual_sha256=actual,
                         size_ok=True, ok=actual == e.sha256, expected_size=e.size,
                         actual_size=e.size)


def _plan(entry: ManifestFile, range_bytes: int) -> list[tuple[int, int]]:
    if entry.size == 0:
        return [(0, 0)]  # one request without a range: the object must exist, and be empty
    return [(s, min(entry.size, s + range_bytes)) for s in range(0, entry.size, range_bytes)]


def in_memory(entry: ManifestFile) -> Bytes:
    """A buffer for one file: anonymous memory, not zeroed (every byte is fetched)."""
    return np.empty(entry.size, dtype=np.uint8)


def fetch_verified(source: RangeSource, prefix: str, files: tuple[ManifestFile, ...], *,
                   threads: int = FETCH_THREADS, range_bytes: int = RANGE_BYTES,
                   allocate: Callable[[ManifestFile], Bytes] = in_memory
                   ) -> tuple[list[FileCheck], dict[str, Bytes]]:
    """Fetch every manifest file under ``prefix`` into the buffers ``allocate`` gives (memory,
    or the node's cache files mapped), verifying as it arrives.

    Returns one FileCheck per entry (manifest order) and, for the files that matched, their
    bytes as read-only arrays. Never raises for a bad or missing object; an ``OSError`` from
    ``allocate`` (a full cache volume) is raised before anything is fetched."""
    work: list[_File] = []
    checks: dict[str, FileCheck] = {}
    for entry in files:
        try:
            check_relative_path(entry.path)
        except ValueError as exc:
            checks[entry.path] = FileCheck(entry.path, entry.sha256, None, False, False,
                                           entry.size, None, str(exc))
            continue
        buf = allocate(entry)
        work.append(_File(entry, object_key(prefix, entry.path), buf, _plan(entry, range_bytes)))

    def one(f: _File, index: int) -> None:
        if f.error is not None:
            return  # this object already failed: its other ranges are not worth fetching
        start, end = f.ranges[index]
        try:
            total = source.fetch(f.key, start, f.buf.data[start:end])
        except RangeFailed as exc:
            size = exc.actual_size
            wrong = size is not None and size != f.entry.size
            f.failed(f"size {size} != expected {f.entry.size}" if wrong else str(exc), size)
            return
        if total != f.entry.size:
            f.failed(f"size {total} != expected {f.entry.size}", total)
            return
        f.landed(index)

    with concurrent.futures.ThreadPoolExecutor(max(1, threads),
                                               thread_name_prefix="node-fetch") as pool:
        # file by file, range by range: each file's hash follows close behind its bytes
        jobs = [pool.submit(one, f, i) for f in work for i in range(len(f.ranges))]
        try:
            for job in jobs:
                job.result()
        finally:
            source.close()
    out: dict[str, Bytes] = {}
    for f in work:
        check = f.check()
        checks[f.entry.path] = check
        if check.ok:
            f.buf.setflags(write=False)  # served as hashed: nothing may write to it now
            out[f.entry.path] = f.buf
    return [checks[e.path] for e in files], out
