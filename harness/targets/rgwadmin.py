"""The Ceph RGW administration adapter: ``radosgw-admin -c CONF`` as a subprocess.

Credential and capacity faults are made (and repaired) where an operator would make them: suspend
or enable a user, remove or create an S3 key, set or clear a bucket quota, read usage. The tool
runs with the cluster's configuration file given explicitly, so no /etc/ceph is needed. A missing
tool or a cluster that does not answer is :class:`~harness.errors.Inconclusive`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from harness.errors import Inconclusive, TargetUnreachable
from harness.inventory import RgwAdminTarget


@dataclass(frozen=True)
class Quota:
    enabled: bool
    max_size: int  # bytes; -1 = unlimited
    max_objects: int  # -1 = unlimited


@dataclass(frozen=True)
class UserInfo:
    uid: str
    suspended: bool
    access_keys: tuple[str, ...]
    raw: dict[str, Any]

    def secret_for(self, access_key: str) -> str | None:
        for k in self.raw.get("keys", []):
            if k.get("access_key") == access_key:
                return str(k.get("secret_key"))
        return None


class RgwAdmin:
    def __init__(self, target: RgwAdminTarget, *, timeout_s: float = 60.0) -> None:
        self.target = target
        self.timeout_s = timeout_s

    def run(self, *args: str) -> str:
        exe = shutil.which(self.target.binary)
        if exe is None:
            raise Inconclusive(f"{self.target.binary} is not installed")
        argv = [exe, "-c", str(self.target.conf), *args]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s,
                                  check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise TargetUnreachable(f"radosgw-admin {args[0]} timed out after "
                                    f"{exc.timeout:.0f} s (is the cluster up?)") from exc
        if proc.returncode != 0:
            raise TargetUnreachable(f"radosgw-admin {' '.join(args[:2])} failed "
                                    f"(exit {proc.returncode}): "
                                    f"{(proc.stderr or proc.stdout).strip()[-300:]}")
        return proc.stdout

    def _json(self, *args: str) -> dict[str, Any]:
        out = self.run(*args)
        try:
            doc = json.loads(out)
        except json.JSONDecodeError as exc:
            raise TargetUnreachable(f"radosgw-admin {args[0]} gave no JSON: {out[:200]!r}") from exc
        if not isinstance(doc, dict):
            raise TargetUnreachable(f"radosgw-admin {args[0]} gave {type(doc).__name__}")
        return doc

    # -- users and keys -------------------------------------------------------------------------

    def user_info(self, uid: str) -> UserInfo:
        doc = self._json("user", "info", f"--uid={uid}")
        keys = tuple(str(k["access_key"]) for k in doc.get("keys", []) if k.get("access_key"))
        return UserInfo(uid, bool(doc.get("suspended")), keys, doc)

    def suspend(self, uid: str) -> None:
        self.run("user", "suspend", f"--uid={uid}")

    def enable(self, uid: str) -> None:
        self.run("user", "enable", f"--uid={uid}")

    def remove_key(self, uid: str, access_key: str) -> None:
        self.run("key", "rm", f"--uid={uid}", "--key-type=s3", f"--access-key={access_key}")

    def create_key(self, uid: str, access_key: str | None = None,
                   secret_key: str | None = None) -> tuple[str, str]:
        """A new S3 key (generated, or the given pair, to put a key back exactly); returns it."""
        args = ["key", "create", f"--uid={uid}", "--key-type=s3"]
        if access_key is not None and secret_key is not None:
            args += [f"--access-key={access_key}", f"--secret-key={secret_key}"]
        else:
            args += ["--gen-access-key", "--gen-secret"]
        before = set(self.user_info(uid).access_keys)
        doc = self._json(*args)
        for k in doc.get("keys", []):
            ak = str(k.get("access_key", ""))
            if (access_key is not None and ak == access_key) or \
                    (access_key is None and ak and ak not in before):
                return ak, str(k["secret_key"])
        raise TargetUnreachable(f"radosgw-admin key create for {uid} returned no new key")

    # -- quotas and usage -----------------------------------------------------------------------

    def bucket_quota(self, bucket: str) -> Quota:
        q = self._json("bucket", "stats", f"--bucket={bucket}").get("bucket_quota", {})
        return Quota(bool(q.get("enabled")), int(q.get("max_size", -1)),
                     int(q.get("max_objects", -1)))

    def bucket_usage(self, bucket: str) -> tuple[int, int]:
        """(bytes as RGW accounts them for quotas, objects) of a bucket, every version counted."""
        usage = self._json("bucket", "stats", f"--bucket={bucket}").get("usage", {})
        main = usage.get("rgw.main", {})
        return int(main.get("size_actual", 0)), int(main.get("num_objects", 0))

    def set_bucket_quota(self, bucket: str, quota: Quota) -> None:
        self.run("quota", "set", "--quota-scope=bucket", f"--bucket={bucket}",
                 f"--max-size={quota.max_size}", f"--max-objects={quota.max_objects}")
        self.run("quota", "enable" if quota.enabled else "disable", "--quota-scope=bucket",
                 f"--bucket={bucket}")
