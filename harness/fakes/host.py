"""An in-memory host: one filesystem and the shell commands drills run on it.

:class:`FakeHost` stands in for :class:`harness.hosts.backend.Host` (hand it in as
``host:<name>``). It holds files (bytes, or sparse: a size that costs no disk, as ``truncate``
makes) and folders, and answers the commands the built-in free-space check and the
``node-cache-full`` scenario run: ``df``/``du`` of a path, listing a folder's entries,
``truncate``, ``rm``, and ``find ... -exec sha256sum``. Any other command exits 127 ("not
supported"), so a check the fake cannot answer could not run; it never passes.

What it does not model: permissions, symlinks, mounts. Folders count :data:`FOLDER_BYTES` each in
``du`` (as on ext4); tests/contracts/test_host_contract.py holds it to the real host's behaviour
(local backend, and the lab's ssh host) where drills depend on it.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass

from harness.hosts.spec import HostSpec

#: what ``du -sb`` counts for a folder itself
FOLDER_BYTES = 4096

DF = "df -PB1 -- %s | tail -n 1 "
DF_DU = "df -PB1 -- %s | tail -n 1 && du -sb -- %s"
LIST = ("cd -- %s && for e in * .[!.]*; do [ -e \"$e\" ] || continue; "
        "if [ -d \"$e\" ]; then echo \"pull $e\"; else echo \"other $e\"; fi; done")
TRUNCATE = "truncate -s %s -- %s"
RM_RF = "rm -rf -- %s"
RM_F = "rm -f -- %s"
HASH_ALL = "find -L %s -type f -name '*' -exec sha256sum {} +"


@dataclass(frozen=True)
class FakeResult:
    """What testinfra's ``run`` returns, the parts drills read."""

    rc: int
    stdout: str = ""
    stderr: str = ""


class FakeHost:
    """One host's filesystem in memory. ``disk_bytes`` is the volume's size: ``df`` reports it
    less what the files hold (sparse files hold nothing)."""

    def __init__(self, spec: HostSpec, *, disk_bytes: int = 1 << 30) -> None:
        self.spec = spec
        self.name = spec.name
        self.backend = spec.backend
        self.disk_bytes = disk_bytes
        self.unreachable = False
        self.closed = 0
        self.commands: list[str] = []
        #: path -> contents (bytes) or the size of a sparse file (int)
        self.files: dict[str, bytes | int] = {}
        self.folders: set[str] = {"/"}

    # -- set-up and inspection (what the host's own processes do) ----------------------------

    def mkdir(self, path: str) -> None:
        path = posixpath.normpath(path)
        while path not in self.folders:
            self.folders.add(path)
            path = posixpath.dirname(path)

    def write(self, path: str, data: bytes) -> None:
        path = posixpath.normpath(path)
        self.mkdir(posixpath.dirname(path))
        self.files[path] = data

    def remove_tree(self, path: str) -> None:
        path = posixpath.normpath(path)
        for p in [p for p in self.files if self._under(p, path)]:
            del self.files[p]
        self.folders -= {d for d in self.folders if self._under(d, path)}

    def entries(self, folder: str) -> list[str]:
        folder = posixpath.normpath(folder)
        names = {p for p in (*self.files, *self.folders)
                 if p != folder and posixpath.dirname(p) == folder}
        return sorted(posixpath.basename(p) for p in names)

    @staticmethod
    def _under(path: str, top: str) -> bool:
        return path == top or path.startswith(top.rstrip("/") + "/")

    @staticmethod
    def _size(content: bytes | int) -> int:
        return content if isinstance(content, int) else len(content)

    def used_bytes(self, top: str) -> int:
        """What ``du -sb`` says of ``top``: file sizes (sparse ones too) and folders."""
        top = posixpath.normpath(top)
        files = sum(self._size(c) for p, c in self.files.items() if self._under(p, top))
        return files + FOLDER_BYTES * sum(1 for d in self.folders if self._under(d, top))

    def free_bytes(self) -> int:
        held = sum(len(c) for c in self.files.values() if isinstance(c, bytes))
        return max(self.disk_bytes - held, 0)

    # -- the adapter (harness.hosts.backend.Host) ---------------------------------------------

    def close(self) -> None:
        self.closed += 1

    def run(self, command: str, *args: str) -> FakeResult:
        if self.unreachable:
            from harness.hosts.backend import HostUnreachable
            raise HostUnreachable(f"{self.name} ({self.backend}): ssh failed: connection refused")
        self.commands.append(command)
        handlers: dict[str, Callable[..., FakeResult]] = {
            DF: self._df, DF_DU: self._df_du, LIST: self._list, TRUNCATE: self._truncate,
            RM_RF: self._rm, RM_F: self._rm, HASH_ALL: self._hash_all}
        handler = handlers.get(command)
        if handler is None:
            return FakeResult(127, "", f"fake host: command not supported: {command}")
        return handler(*args)

    def _missing(self, path: str) -> FakeResult:
        return FakeResult(1, "", f"{path}: No such file or directory")

    def _df(self, path: str) -> FakeResult:
        if posixpath.normpath(path) not in self.folders:
            return self._missing(path)
        used = self.disk_bytes - self.free_bytes()
        return FakeResult(0, f"fake {self.disk_bytes} {used} {self.free_bytes()} "
                             f"{100 * used // max(self.disk_bytes, 1)}% /\n")

    def _df_du(self, path: str, again: str) -> FakeResult:
        df = self._df(path)
        if df.rc != 0:
            return df
        return FakeResult(0, df.stdout + f"{self.used_bytes(again)}\t{again}\n")

    def _list(self, folder: str) -> FakeResult:
        if posixpath.normpath(folder) not in self.folders:
            return self._missing(folder)
        kinds = ["pull" if posixpath.join(posixpath.normpath(folder), e) in self.folders
                 else "other" for e in self.entries(folder)]
        return FakeResult(0, "".join(f"{k} {e}\n" for k, e in
                                     zip(kinds, self.entries(folder), strict=True)))

    def _truncate(self, size: str, path: str) -> FakeResult:
        path = posixpath.normpath(path)
        if posixpath.dirname(path) not in self.folders:
            return self._missing(path)
        current = self.files.get(path, b"")
        n = int(size)
        if isinstance(current, bytes) and n <= len(current):
            self.files[path] = current[:n]
        else:  # grown past its data: the rest is a hole, the file becomes sparse
            self.files[path] = n
        return FakeResult(0)

    def _rm(self, path: str) -> FakeResult:
        self.remove_tree(path)
        return FakeResult(0)

    def _hash_all(self, top: str) -> FakeResult:
        top = posixpath.normpath(top)
        if top not in self.folders:
            return self._missing(top)
        lines = []
        for p, content in sorted(self.files.items()):
            if self._under(p, top):
                data = content if isinstance(content, bytes) else bytes(content)
                lines.append(f"{hashlib.sha256(data).hexdigest()}  {p}\n")
        return FakeResult(0, "".join(lines))
