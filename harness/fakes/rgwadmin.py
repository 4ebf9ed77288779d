"""An in-memory object-store administration for unit tests: :class:`FakeRgwAdmin` implements
:class:`harness.targets.protocols.RgwAdminAPI` with the meaning of harness/targets/rgwadmin.py
(accounts with keys that can be suspended, removed and created; bucket quotas and usage).

:meth:`FakeRgwAdmin.authenticate` is what the store asks to accept a key, with the error codes
RGW answers (InvalidAccessKeyId, SignatureDoesNotMatch, UserSuspended); usage is read from the
store through the ``usage`` callable, every version counted, as RGW counts for quotas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.errors import TargetUnreachable
from harness.targets.rgwadmin import Quota, UserInfo


@dataclass
class _User:
    suspended: bool = False
    keys: dict[str, str] = field(default_factory=dict)  # access key -> secret key


class FakeRgwAdmin:
    def __init__(self, usage: Callable[[str], tuple[int, int]]) -> None:
        self.usage = usage
        self.users: dict[str, _User] = {}
        self.quotas: dict[str, Quota] = {}
        self._serial = 0

    def add_user(self, uid: str, access_key: str, secret_key: str) -> None:
        self.users[uid] = _User(False, {access_key: secret_key})

    def authenticate(self, access_key: str, secret_key: str) -> str | None:
        for user in self.users.values():
            if access_key in user.keys:
                if user.keys[access_key] != secret_key:
                    return "SignatureDoesNotMatch"
                return "UserSuspended" if user.suspended else None
        return "InvalidAccessKeyId"

    def _user(self, uid: str) -> _User:
        if uid not in self.users:
            raise TargetUnreachable(f"radosgw-admin user info failed (exit 22): could not fetch "
                                    f"user info: no user info saved for {uid}")
        return self.users[uid]

    # -- the protocol ---------------------------------------------------------------------------

    def user_info(self, uid: str) -> UserInfo:
        u = self._user(uid)
        raw = {"user_id": uid, "suspended": int(u.suspended),
               "keys": [{"user": uid, "access_key": a, "secret_key": s}
                        for a, s in u.keys.items()]}
        return UserInfo(uid, u.suspended, tuple(u.keys), raw)

    def suspend(self, uid: str) -> None:
        self._user(uid).suspended = True

    def enable(self, uid: str) -> None:
        self._user(uid).suspended = False

    def remove_key(self, uid: str, access_key: str) -> None:
        self._user(uid).keys.pop(access_key, None)

    def create_key(self, uid: str, access_key: str | None = None,
                   secret_key: str | None = None) -> tuple[str, str]:
        if access_key is None or secret_key is None:
            self._serial += 1
            access_key, secret_key = f"GEN{self._serial:05d}", f"secret-{self._serial:05d}"
        self._user(uid).keys[access_key] = secret_key
        return access_key, secret_key

    def bucket_quota(self, bucket: str) -> Quota:
        return self.quotas.get(bucket, Quota(False, -1, -1))

    def bucket_usage(self, bucket: str) -> tuple[int, int]:
        return self.usage(bucket)

    def set_bucket_quota(self, bucket: str, quota: Quota) -> None:
        self.quotas[bucket] = quota

    def refuses(self, bucket: str, more_bytes: int) -> bool:
        """Would the bucket's quota refuse a write of ``more_bytes``?"""
        q = self.bucket_quota(bucket)
        return q.enabled and q.max_size >= 0 and self.usage(bucket)[0] + more_bytes > q.max_size
