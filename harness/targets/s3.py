"""The artifact store adapter: any S3 endpoint (Ceph RGW, MinIO, AWS) through boto3.

Every call the harness makes to a store goes through :class:`S3Store`, which turns botocore's
errors into drillbook's: a store that cannot be reached or refuses the credentials raises
:class:`~harness.errors.TargetUnreachable` (the drill becomes INCONCLUSIVE, never PASS); any other
refusal raises :class:`StoreError` carrying the store's own code and message (``NoSuchKey: The
specified key does not exist.``) and what was asked (``get object s3://bucket/key``).

A store that accepts connections and never answers (a frozen gateway) is declared unreachable
within a bounded time: :meth:`S3Store.ping` (the preflight's check) makes one attempt that waits
at most 3 s to connect and ``$DRILLBOOK_S3_TIMEOUT_S`` (default :data:`DEFAULT_TIMEOUT_S`) for
the answer; every other call waits at most :data:`DATA_READ_TIMEOUT_S` per socket read (a large
part upload on a busy store may take that long to be acknowledged) and is tried three times.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from harness.blast import Fence
from harness.errors import TargetUnreachable
from harness.integrity import Readable, sha256_stream
from harness.inventory import S3Target, Secret
from harness.targets.s3_parts import (
    COPY_CHUNK,
    MULTIPART_THRESHOLD,
    PART_SIZE,
    SPARE_BUFFERS,
    PartBudget,
    fill,
    read_part,
)

__all__ = ["DATA_READ_TIMEOUT_S", "DEFAULT_TIMEOUT_S", "MULTIPART_THRESHOLD", "PART_SIZE",
           "SPARE_BUFFERS", "ObjectVersion", "PartBudget", "S3Store", "StoreError",
           "default_timeout_s", "fill", "read_part"]

T = TypeVar("T")

# Refusals that mean "the harness cannot use this store", as opposed to "this object is missing".
_ACCESS_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "UserSuspended",
                 "403"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}

#: Seconds the reachability probe waits for the store's answer (one attempt, no retry).
DEFAULT_TIMEOUT_S = 5.0
#: Seconds any other call's socket read may wait before it is retried (three tries in all).
DATA_READ_TIMEOUT_S = 30.0


def default_timeout_s() -> float:
    """``$DRILLBOOK_S3_TIMEOUT_S`` when set to a positive number, else DEFAULT_TIMEOUT_S."""
    raw = os.environ.get("DRILLBOOK_S3_TIMEOUT_S", "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if 0 < value < float("inf") else DEFAULT_TIMEOUT_S


class StoreError(TargetUnreachable):
    """The store answered and refused: its own error code and message, and what was asked."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ObjectVersion:
    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool
    last_modified: datetime
    etag: str
    size: int


class S3Store:
    """One S3 endpoint with one set of credentials."""

    def __init__(self, target: S3Target, *, max_concurrency: int = 4,
                 connect_timeout: float = 3.0, read_timeout: float = DATA_READ_TIMEOUT_S,
                 probe_timeout: float | None = None) -> None:
        self.target = target
        self._client: Any = self._make_client(connect_timeout, read_timeout, attempts=3)
        self.probe_timeout_s = default_timeout_s() if probe_timeout is None else probe_timeout
        self._connect_timeout = connect_timeout
        self._probe: Any = None  # made on first ping: most stores are pinged once, if at all
        self._transfer = TransferConfig(multipart_chunksize=16 * 1024 * 1024,
                                        max_concurrency=max_concurrency)
        self.max_concurrency = max_concurrency
        #: set by the runner for the length of a drill: writes outside it are refused
        self.fence: Fence | None = None

    def as_account(self, label: str, access_key: str, secret_key: str) -> S3Store:
        """The same endpoint under another account's key (a backup job's, a retired one), to
        see what that account may do. Unfenced: it acts as that account, outside any drill's
        declared resources, exactly as the account itself would."""
        t = self.target
        return S3Store(S3Target(label, t.endpoint, t.region, Secret(access_key),
                                Secret(secret_key), False))

    def _may_write(self, bucket: str, key: str) -> None:
        if self.fence is not None:
            self.fence.check_s3(self.target.name, bucket, key)

    def _make_client(self, connect_timeout: float, read_timeout: float, *, attempts: int) -> Any:
        cfg = Config(
            # The payload is not hashed a second time for the signature (botocore would SHA-256
            # every part over plain HTTP) and no CRC is added where S3 does not require one:
            # drillbook hashes every byte it sends or reads itself, against the manifest.
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            signature_version="s3v4",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # total_max_attempts counts the first try (max_attempts would count only retries)
            retries={"total_max_attempts": attempts, "mode": "standard"},
        )
        t = self.target
        return boto3.session.Session().client(
            "s3", endpoint_url=t.endpoint, region_name=t.region,
            aws_access_key_id=t.access_key.value, aws_secret_access_key=t.secret_key.value,
            config=cfg)

    # -- error translation -------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectTimeoutError,
                botocore.exceptions.ReadTimeoutError,
                botocore.exceptions.ConnectionClosedError) as exc:
            raise TargetUnreachable(
                f"store {self.target.name} ({self.target.endpoint}) unreachable during {what}: {exc}"
            ) from exc
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            said = f"{code}: {error.get('Message')}" if error.get("Message") else code
            if code in _ACCESS_CODES:
                raise TargetUnreachable(
                    f"store {self.target.name} refused the credentials during {what}: {said}"
                ) from exc
            raise StoreError(f"store {self.target.name} ({self.target.endpoint}) refused {what}: "
                             f"{said or exc}", code) from exc

    @staticmethod
    def is_missing(exc: BaseException) -> bool:
        if isinstance(exc, StoreError):
            return exc.code in _MISSING_CODES
        return (isinstance(exc, botocore.exceptions.ClientError)
                and str(exc.response.get("Error", {}).get("Code", "")) in _MISSING_CODES)

    # -- reads ---------------------------------------------------------------------------------

    def ping(self) -> None:
        """Raise TargetUnreachable unless the store answers an authenticated request."""
        if self._probe is None:
            self._probe = self._make_client(self._connect_timeout, self.probe_timeout_s,
                                            attempts=1)
        self._call(f"ping (one attempt, answer within {self.probe_timeout_s:g} s)",
                   lambda: self._probe.list_buckets())

    def versioning_enabled(self, bucket: str) -> bool:
        r = self._call("get versioning", lambda: self._client.get_bucket_versioning(Bucket=bucket))
        return bool(r.get("Status") == "Enabled")

    def list_versions(self, bucket: str, prefix: str) -> list[ObjectVersion]:
        """Every version and delete marker under prefix, newest first per key."""
        out: list[ObjectVersion] = []

        def pages() -> Iterator[dict[str, Any]]:
            paginator = self._client.get_paginator("list_object_versions")
            yield from paginator.paginate(Bucket=bucket, Prefix=prefix)

        for page in self._call("list versions", lambda: list(pages())):
            for v in page.get("Versions", []):
                out.append(ObjectVersion(v["Key"], v["VersionId"], v["IsLatest"], False,
                                         v["LastModified"], v.get("ETag", "").strip('"'),
                                         int(v.get("Size", 0))))
            for m in page.get("DeleteMarkers", []):
                out.append(ObjectVersion(m["Key"], m["VersionId"], m["IsLatest"], True,
                                         m["LastModified"], "", 0))
        out.sort(key=lambda v: (v.key, -v.last_modified.timestamp(), not v.is_latest))
        return out

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        def run() -> list[str]:
            keys: list[str] = []
            for page in self._client.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=prefix):
                keys.extend(o["Key"] for o in page.get("Contents", []))
            return keys
        return self._call("list objects", run)

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self._call(f"head object s3://{bucket}/{key}",
                       lambda: self._client.head_object(Bucket=bucket, Key=key))
            return True
        except StoreError as exc:
            if self.is_missing(exc):
                return False
            raise

    def read_bytes(self, bucket: str, key: str, version_id: str | None = None) -> bytes | None:
        """A small object's content, or None when it does not exist."""
        try:
            body = self.open(bucket, key, version_id)
        except StoreError as exc:
            if self.is_missing(exc):
                return None
            raise
        data: bytes = self._call("read object", body.read)
        return data

    def open(self, bucket: str, key: str, version_id: str | None = None) -> Readable:
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            args["VersionId"] = version_id
        r = self._call(f"get object s3://{bucket}/{key}"
                       + (f" (version {version_id})" if version_id else ""),
                       lambda: self._client.get_object(**args))
        body: Readable = r["Body"]
        return body

    def hash_object(self, bucket: str, key: str,
                    version_id: str | None = None) -> tuple[str | None, int]:
        """(sha256, size) of an object read once, streaming; (None, 0) when it does not exist."""
        try:
            body = self.open(bucket, key, version_id)
        except StoreError as exc:
            if self.is_missing(exc):
                return None, 0
            raise
        # 1 MiB reads: several of these run at once, and 8 MiB blocks freed and made again in
        # each thread stay in glibc's per-thread heaps (resident) long after the drill needs them
        return self._call("read object", lambda: sha256_stream(body, COPY_CHUNK))

    def hash_objects(self, bucket: str,
                     keys: list[tuple[str, str | None]]) -> dict[str, tuple[str | None, int]]:
        """Hash many objects in parallel (network and hashing overlap; hashlib releases the GIL)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            futures = {key: pool.submit(self.hash_object, bucket, key, vid) for key, vid in keys}
            return {key: f.result() for key, f in futures.items()}

    def list_objects(self, bucket: str, prefix: str) -> list[tuple[str, int, datetime]]:
        """(key, size, last modified) of every current object under prefix."""
        def run() -> list[tuple[str, int, datetime]]:
            out: list[tuple[str, int, datetime]] = []
            for page in self._client.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=prefix):
                out.extend((o["Key"], int(o.get("Size", 0)), o["LastModified"])
                           for o in page.get("Contents", []))
            return out
        return self._call("list objects", run)

    def list_uploads(self, bucket: str, prefix: str = "") -> list[tuple[str, str, datetime]]:
        """(key, upload id, initiated) of every multipart upload begun and never completed or
        aborted under prefix: their parts hold space that no object shows."""
        def run() -> list[tuple[str, str, datetime]]:
            out: list[tuple[str, str, datetime]] = []
            for page in self._client.get_paginator("list_multipart_uploads").paginate(
                    Bucket=bucket, Prefix=prefix):
                out.extend((u["Key"], u["UploadId"], u["Initiated"])
                           for u in page.get("Uploads", []))
            return out
        return self._call("list multipart uploads", run)

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Abort an unfinished multipart upload: its parts are freed."""
        self._may_write(bucket, key)
        self._call("abort multipart upload", lambda: self._client.abort_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id))

    # -- writes --------------------------------------------------------------------------------

    def ensure_bucket(self, bucket: str, versioned: bool) -> None:
        if self.fence is not None:
            self.fence.check_bucket(self.target.name, bucket)
        try:
            self._call("head bucket", lambda: self._client.head_bucket(Bucket=bucket))
        except StoreError:
            self._call("create bucket", lambda: self._client.create_bucket(Bucket=bucket))
        if versioned:
            self._call("enable versioning", lambda: self._client.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}))

    def upload_stream(self, bucket: str, key: str, stream: Readable) -> tuple[str, int]:
        """Upload a stream (multipart when large); returns the (sha256, size) of what was sent.
        Memory stays under ``max_concurrency + 1`` parts, however large the object."""
        with concurrent.futures.ThreadPoolExecutor(self.max_concurrency,
                                                   thread_name_prefix="upload-part") as parts:
            return self.upload_hashed(bucket, key, stream, parts=parts,
                                      budget=PartBudget(self.max_concurrency + 1))

    def upload_hashed(self, bucket: str, key: str, stream: Readable, *,
                      parts: concurrent.futures.Executor, budget: PartBudget,
                      part_size: int = PART_SIZE,
                      threshold: int = MULTIPART_THRESHOLD) -> tuple[str, int]:
        """Upload a stream, hashing it as it is read; returns (sha256, size) of what was sent.

        Parts are read here, one at a time, and sent by ``parts`` (a pool shared by every
        concurrent upload), so reading the next part overlaps sending the previous ones. Every
        part buffer holds one unit of ``budget`` from before it is read until it is sent: memory
        stays bounded by the budget, not by the object. Small objects go in one PUT; larger ones
        in parts of ``part_size`` (the ETag boto3's managed upload would give). An upload that
        fails is aborted, leaving no partial object."""
        self._may_write(bucket, key)
        h = hashlib.sha256()
        buf = budget.take(part_size)
        try:
            n = fill(stream, buf)
        except BaseException:
            budget.give(buf)
            raise
        h.update(memoryview(buf)[:n])
        size = n
        if size < min(threshold, part_size):
            try:
                body = bytes(memoryview(buf)[:n])
                self._call("put object", lambda: self._client.put_object(
                    Bucket=bucket, Key=key, Body=body))
            finally:
                budget.give(buf)
            return h.hexdigest(), size
        upload_id: str = self._call("create multipart upload", lambda: self._client
                                    .create_multipart_upload(Bucket=bucket, Key=key))["UploadId"]
        sent: list[concurrent.futures.Future[dict[str, Any]]] = []
        try:
            number = 1
            while True:
                sent.append(parts.submit(self._send_part, bucket, key, upload_id, number, buf, n,
                                         budget))
                buf = budget.take(part_size)  # the sent buffer is the pool's until it is sent
                try:
                    n = fill(stream, buf)
                except BaseException:
                    budget.give(buf)
                    raise
                if not n:
                    budget.give(buf)
                    break
                h.update(memoryview(buf)[:n])
                size += n
                number += 1
            done = [f.result() for f in sent]
            self._call("complete multipart upload", lambda: self._client
                       .complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": done}))
        except BaseException:
            for f in sent:
                if f.cancel():
                    budget.release()  # never sent: _send_part will not give its unit back
            concurrent.futures.wait(sent)
            try:
                self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except botocore.exceptions.BotoCoreError:
                pass  # the original error matters; an abandoned upload is reclaimed by lifecycle
            except botocore.exceptions.ClientError:
                pass
            raise
        return h.hexdigest(), size

    def _send_part(self, bucket: str, key: str, upload_id: str, number: int, buf: bytearray,
                   n: int, budget: PartBudget) -> dict[str, Any]:
        try:
            # a full part goes as the buffer itself (no copy); only a file's last part is copied
            body: bytes | bytearray = buf if n == len(buf) else bytes(memoryview(buf)[:n])
            r = self._call("upload part", lambda: self._client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body))
            return {"PartNumber": number, "ETag": r["ETag"]}
        finally:
            budget.give(buf)

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        self._may_write(bucket, key)
        self._call("put object", lambda: self._client.put_object(Bucket=bucket, Key=key, Body=data))

    def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        """Without a version: what `aws s3 rm` does (a delete marker on a versioned bucket).
        With one: that version is gone for good."""
        self._may_write(bucket, key)
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            args["VersionId"] = version_id
        self._call("delete object", lambda: self._client.delete_object(**args))

    def copy_version(self, src_bucket: str, key: str, version_id: str, dest_bucket: str,
                     dest_key: str) -> None:
        """Server-side copy of one version (multipart copy when large)."""
        self._may_write(dest_bucket, dest_key)
        source = {"Bucket": src_bucket, "Key": key, "VersionId": version_id}
        self._call("copy object", lambda: self._client.copy(source, dest_bucket, dest_key,
                                                            Config=self._transfer))

    # -- conditional writes (drill leases) -----------------------------------------------------

    def put_conditional(self, bucket: str, key: str, data: bytes, *,
                        if_match: str | None = None) -> str | None:
        """Create ``key`` only if it does not exist (``If-None-Match: *``) or, with ``if_match``,
        replace it only if its ETag is still that one. Returns the new ETag, or None when the
        condition did not hold (someone else wrote first)."""
        args: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": data}
        if if_match is None:
            args["IfNoneMatch"] = "*"
        else:
            # unquoted: Ceph RGW compares the raw value (a quoted ETag never matches there)
            args["IfMatch"] = if_match
        try:
            r = self._call("conditional put", lambda: self._client.put_object(**args))
        except StoreError as exc:  # _call has turned the ClientError into the store's own code
            if exc.code in {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"} or \
                    (if_match is not None and self.is_missing(exc)):
                return None
            raise
        return str(r.get("ETag", "")).strip('"')

    def read_with_etag(self, bucket: str, key: str) -> tuple[bytes, str] | None:
        """A small object's content and ETag, or None when it does not exist."""
        try:
            r = self._call("get object", lambda: self._client.get_object(Bucket=bucket, Key=key))
        except StoreError as exc:
            if self.is_missing(exc):
                return None
            raise
        data: bytes = self._call("read object", r["Body"].read)
        return data, str(r.get("ETag", "")).strip('"')
