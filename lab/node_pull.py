"""Pulling a model's files from the object store and verifying them as they stream.

The inference node (:mod:`lab.node`) never trusts what the store hands back:
each object is hashed while it is written, and the outcome of every manifest
entry is recorded, so the evidence lists every damaged file and not just the
first. The S3 client is behind a small protocol so that tests can hand in a
fake store.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from lab.netmanifest import HASH_CHUNK_BYTES, Manifest, check_relative_path

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: objects a node pulls at once when it loads a model
PULL_THREADS = 4


class StreamingBodyLike(Protocol):
    """The part of botocore's StreamingBody that pulling needs."""

    def read(self, amt: int | None = ...) -> bytes: ...


class S3Like(Protocol):
    """The part of a boto3 S3 client that pulling needs (lets tests use a fake)."""

    def get_object(self, *, Bucket: str, Key: str) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class FileCheck:
    """Outcome of pulling and verifying one manifest entry.

    ``actual_sha256`` is None when the object could not be read completely
    (missing, unreadable, cut off); ``error`` then says why.
    """

    path: str
    expected_sha256: str
    actual_sha256: str | None
    size_ok: bool
    ok: bool
    expected_size: int = 0
    actual_size: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.actual_sha256,
            "ok": self.ok,
            "expected_sha256": self.expected_sha256,
            "size_ok": self.size_ok,
            "expected_size": self.expected_size,
            "size": self.actual_size,
            "error": self.error,
        }

    def describe(self) -> str:
        if self.ok:
            return f"{self.path}: ok"
        if self.actual_sha256 is None:
            return f"{self.path}: {self.error or 'not readable'}"
        if not self.size_ok:
            return f"{self.path}: size {self.actual_size} != {self.expected_size}"
        return (
            f"{self.path}: sha256 {self.actual_sha256[:12]} != expected {self.expected_sha256[:12]}"
        )


def object_key(prefix: str, path: str) -> str:
    """Key of ``path`` under ``prefix``; a non-empty prefix is treated as a folder."""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix + path


def describe_error(exc: BaseException) -> str:
    """Short, log-friendly description, naming the S3 error code when there is one."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        err = response.get("Error")
        if isinstance(err, Mapping) and err.get("Code"):
            message = err.get("Message")
            return f"{err['Code']}: {message}" if message else str(err["Code"])
    return f"{type(exc).__name__}: {exc}"


def _pull_one(
    s3_client: S3Like,
    bucket: str,
    prefix: str,
    dest: Path,
    expected_path: str,
    expected_sha256: str,
    expected_size: int,
) -> FileCheck:
    def failed(error: str) -> FileCheck:
        return FileCheck(
            path=expected_path,
            expected_sha256=expected_sha256,
            actual_sha256=None,
            size_ok=False,
            ok=False,
            expected_size=expected_size,
            error=error,
        )

    try:
        check_relative_path(expected_path)
    except ValueError as exc:
        return failed(str(exc))
    target = dest / expected_path
    key = object_key(prefix, expected_path)
    digest = hashlib.sha256()
    size = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        response = s3_client.get_object(Bucket=bucket, Key=key)
        body = cast(StreamingBodyLike, response["Body"])
        try:
            with target.open("wb") as fh:
                # Hash while streaming: the bytes that get verified are the
                # bytes that get written, and the file is never re-read.
                while chunk := body.read(HASH_CHUNK_BYTES):
                    digest.update(chunk)
                    fh.write(chunk)
                    size += len(chunk)
        finally:
            close = getattr(body, "close", None)
            if callable(close):
                close()
    # Any failure while fetching one object (S3 error, connection reset, cut
    # stream, disk full) means this file is unverified; record it and go on so
    # the evidence lists every damaged file, not just the first.
    except Exception as exc:  # noqa: BLE001
        target.unlink(missing_ok=True)
        return failed(describe_error(exc))
    actual = digest.hexdigest()
    size_ok = size == expected_size
    return FileCheck(
        path=expected_path,
        expected_sha256=expected_sha256,
        actual_sha256=actual,
        size_ok=size_ok,
        ok=size_ok and actual == expected_sha256,
        expected_size=expected_size,
        actual_size=size,
    )


def pull_verified(
    s3_client: S3Like, bucket: str, prefix: str, dest: Path, manifest: Manifest
) -> list[FileCheck]:
    """Download every manifest file under ``prefix`` into ``dest``, verifying as it streams.

    Each object is read once, in 8 MiB chunks, hashed and written at the same
    time. Returns one FileCheck per manifest entry, in manifest order; the
    caller decides what a failure means. Never raises for a bad or missing
    object.
    """
    dest.mkdir(parents=True, exist_ok=True)
    # several objects at once (boto3 clients are thread-safe): a model of a few large shards
    # loads at the store's speed, not one stream's
    with concurrent.futures.ThreadPoolExecutor(PULL_THREADS) as pool:
        return list(pool.map(
            lambda f: _pull_one(s3_client, bucket, prefix, dest, f.path, f.sha256, f.size),
            manifest.files))


def make_s3_client(endpoint: str, region: str) -> S3Like:
    """boto3 S3 client for an on-prem gateway: path-style, SigV4, credentials from env."""
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        # Ceph RGW does not speak the newer flexible-checksum headers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)
    return cast(S3Like, client)
