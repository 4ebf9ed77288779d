"""What the inventory declares about a host, as frozen records (no YAML, no testinfra here).

A host is reached through a testinfra backend (``local`` or ``ssh``; ``kubectl`` for pods is
not built yet). For ssh the inventory gives an address, a user, a port and the path of a private
key file: never a password, and the key itself never leaves the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("local", "ssh")
SITE_CHECK_KINDS = ("file", "package", "service", "socket", "command")


@dataclass(frozen=True)
class SshAccess:
    address: str
    user: str
    key_file: Path
    port: int = 22
    #: a known_hosts file to check the host key against (ssh's default when None)
    known_hosts: Path | None = None


@dataclass(frozen=True)
class SpacePath:
    """A restore or cache path: its free space must be at least the drill's artifact size times
    ``factor`` (and at least ``min_free_bytes``). ``capacity_bytes`` is the path's own budget
    when it is smaller than its filesystem (a directory quota, a small volume), so free space is
    the smaller of the filesystem's and the budget minus what the path holds."""

    path: str
    factor: float = 1.0
    min_free_bytes: int = 0
    capacity_bytes: int | None = None


@dataclass(frozen=True)
class CredentialFile:
    """A credential file: exists, readable by its owner only, younger than ``max_age_s``."""

    path: str
    max_age_s: float


@dataclass(frozen=True)
class MountSpec:
    path: str
    writable: bool = True


@dataclass(frozen=True)
class Serving:
    """A serving process: its command line contains ``process``, it listens on ``port`` (TCP),
    and after recovery the files under ``loaded_dir`` hash to the asset's manifest."""

    process: str
    port: int
    loaded_dir: str | None = None


@dataclass(frozen=True)
class SiteCheck:
    """One of the site's own checks, in testinfra's vocabulary: ``kind`` is file, package,
    service, socket or command; ``subject`` the path, package, unit, socket URL or command line;
    ``expect`` what must hold (e.g. ``("mode", "0600")``, ``("stdout_contains", "ok")``)."""

    kind: str
    subject: str
    expect: tuple[tuple[str, str | int | bool], ...]


@dataclass(frozen=True)
class HostSpec:
    name: str
    backend: str
    ssh: SshAccess | None = None
    targets: tuple[str, ...] = ()
    assets: tuple[str, ...] = ()
    paths: tuple[SpacePath, ...] = ()
    #: tool -> pinned version ("0.16" matches 0.16.x)
    tools: tuple[tuple[str, str], ...] = ()
    credentials: tuple[CredentialFile, ...] = ()
    clock_tolerance_s: float | None = None
    mounts: tuple[MountSpec, ...] = ()
    serving: tuple[Serving, ...] = ()
    checks: tuple[SiteCheck, ...] = ()
    #: the inventory file it was declared in (named in reasons: "declared in ...")
    declared_in: str = ""
