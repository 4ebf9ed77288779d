"""The backup adapter: restic repositories (any backend restic speaks; the lab uses S3 on RGW).

restic runs as a subprocess with its credentials in the environment only (never on the command
line, where `ps` would show them). Failures become drillbook errors: restic missing or the
repository unreachable is :class:`~harness.errors.Inconclusive`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from harness.errors import Inconclusive, TargetUnreachable
from harness.inventory import ResticTarget

_FRACTION = re.compile(r"(\.\d{6})\d+")
#: Commands that only read: run with --no-lock, so drills never wait on (or leave) a lock.
_READ_ONLY = ("snapshots", "ls", "dump", "cat", "restore")


def parse_restic_time(text: str) -> datetime:
    """restic prints nanoseconds and a numeric offset; Python keeps microseconds."""
    return datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("Z", "+00:00")))


@dataclass(frozen=True)
class Snapshot:
    id: str
    short_id: str
    time: datetime
    paths: tuple[str, ...]
    tags: tuple[str, ...]
    tree: str = ""  # the root tree's id: restic's Merkle root of everything in the snapshot


@dataclass(frozen=True)
class FileNode:
    """A file in a snapshot as restic's tree records it: no bytes read.

    ``content`` lists the SHA-256 ids of the chunks that make up the file, in order; restic
    checks every chunk against its id when it reads it. Two files with the same content list hold
    the same bytes, in any repository, so a proof that one hashes to X holds for the other."""

    path: str  # relative to the directory that was listed
    size: int
    content: tuple[str, ...]

    @property
    def content_id(self) -> str:
        """One id for the whole content list (the cache key of a content proof)."""
        return hashlib.sha256(f"{self.size}:".encode() + ",".join(self.content).encode()
                              ).hexdigest()


#: The pipe from a `restic dump` to the harness: 1 MiB instead of 64 KiB means far fewer wake-ups
#: per GiB. Linux only; elsewhere the default stays.
_PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = 1031


class ResticRepo:
    def __init__(self, target: ResticTarget, *, binary: str = "restic",
                 cache_dir: Path | None = None, timeout_s: float = 3600.0) -> None:
        self.target = target
        self.binary = binary
        self.cache_dir = cache_dir
        self.timeout_s = timeout_s

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
        env["RESTIC_REPOSITORY"] = self.target.repository
        env["RESTIC_PASSWORD"] = self.target.password.value
        if self.target.credentials_file is not None:
            env.update(read_credentials_file(self.target.credentials_file))
        elif self.target.access_key is not None and self.target.secret_key is not None:
            env["AWS_ACCESS_KEY_ID"] = self.target.access_key.value
            env["AWS_SECRET_ACCESS_KEY"] = self.target.secret_key.value
        if self.cache_dir is not None:
            env["RESTIC_CACHE_DIR"] = str(self.cache_dir)
        return env

    def _argv(self, *args: str) -> list[str]:
        exe = shutil.which(self.binary)
        if exe is None:
            raise Inconclusive(f"restic is not installed (looked for {self.binary!r} on PATH)")
        return [exe, "--no-lock", *args] if args and args[0] in _READ_ONLY else [exe, *args]

    def run(self, *args: str, timeout_s: float | None = None) -> str:
        argv = self._argv(*args)
        try:
            proc = subprocess.run(argv, env=self._env(), capture_output=True, text=True,
                                  timeout=timeout_s or self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise TargetUnreachable(f"restic {args[0]} timed out after {exc.timeout:.0f} s") from exc
        if proc.returncode != 0:
            raise TargetUnreachable(
                f"restic {args[0]} on {self.target.name} failed (exit {proc.returncode}): "
                f"{_last_lines(proc.stderr)}")
        return proc.stdout

    def init(self) -> None:
        self.run("init")

    def is_initialized(self) -> bool:
        try:
            self.run("cat", "config", timeout_s=60)
            return True
        except TargetUnreachable:
            return False

    def snapshots(self, path: str | None = None) -> list[Snapshot]:
        """Snapshots, oldest first (optionally those containing exactly ``path``)."""
        args = ["snapshots", "--json"]
        if path:
            args += ["--path", path]
        raw: list[dict[str, Any]] = json.loads(self.run(*args, timeout_s=120) or "[]") or []
        snaps = [Snapshot(s["id"], s.get("short_id", s["id"][:8]), parse_restic_time(s["time"]),
                          tuple(s.get("paths") or ()), tuple(s.get("tags") or ()),
                          str(s.get("tree", ""))) for s in raw]
        snaps.sort(key=lambda s: s.time)
        return snaps

    def ls(self, snapshot_id: str, path: str) -> list[str]:
        """Files (not directories) under path in a snapshot, as absolute snapshot paths."""
        out = self.run("ls", "--json", snapshot_id, path, timeout_s=300)
        files: list[str] = []
        for line in out.splitlines():
            try:
                node = json.loads(line)
            except json.JSONDecodeError:
                continue
            if node.get("struct_type") == "node" and node.get("type") == "file":
                files.append(str(node["path"]))
        return files

    @contextmanager
    def dump(self, snapshot_id: str, path: str) -> Iterator[IO[bytes]]:
        """Stream one file out of a snapshot; raises TargetUnreachable if restic fails, with
        restic's own message (also when the failure shows first as a truncated stream)."""
        argv = self._argv("dump", snapshot_id, path)
        proc = subprocess.Popen(argv, env=self._env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, bufsize=_PIPE_SIZE)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            fcntl.fcntl(proc.stdout.fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)
        except OSError:
            pass  # not Linux, or over the system's pipe-max-size: the default pipe works too
        try:
            yield proc.stdout
        except (tarfile.TarError, EOFError) as exc:
            # restic died mid-stream: what it said is the reason, not the reader's complaint
            rc, err = self._finish(proc)
            raise TargetUnreachable(
                f"restic dump {snapshot_id} {path} on {self.target.name} failed "
                f"(exit {rc}): {_last_lines(err) if rc != 0 else 'stream ended early'} "
                f"[{type(exc).__name__}: {exc}]") from exc
        except BaseException:
            self._finish(proc)
            raise
        rc, err = self._finish(proc)
        if rc != 0:
            raise TargetUnreachable(f"restic dump {snapshot_id} {path} on {self.target.name} "
                                    f"failed (exit {rc}): {_last_lines(err)}")

    def _finish(self, proc: subprocess.Popen[bytes]) -> tuple[int, str]:
        """Close our end of the stream, reap restic; (exit code, what it wrote to stderr)."""
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        try:
            rc = proc.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        return rc, err

    @contextmanager
    def dump_tree(self, snapshot_id: str, path: str) -> Iterator[Iterator[tuple[str, IO[bytes]]]]:
        """Stream every file under a directory of a snapshot with ONE restic process (restic
        dumps a directory as a tar stream). Yields an iterator of (path relative to ``path``,
        stream); each stream must be consumed before the next is taken."""
        with self.dump(snapshot_id, path) as raw, tarfile.open(fileobj=raw, mode="r|") as archive:

            def members() -> Iterator[tuple[str, IO[bytes]]]:
                prefix = path.strip("/") + "/"
                for member in archive:
                    if not member.isfile():
                        continue
                    rel = member.name.lstrip("/").removeprefix(prefix)
                    stream = archive.extractfile(member)
                    if stream is not None:
                        yield rel, stream

            yield members()

    def files(self, snapshot: Snapshot, path: str,
              trees: MutableMapping[str, list[dict[str, Any]]] | None = None
              ) -> dict[str, FileNode]:
        """Every file under ``path`` in a snapshot with its size and chunk ids, read from
        restic's trees (one ``restic cat`` per directory on the way); no file data is read.
        ``trees`` caches tree blobs by id (they are content-addressed, so never go stale)."""
        cache: MutableMapping[str, list[dict[str, Any]]] = {} if trees is None else trees
        tree = snapshot.tree or str(json.loads(self.run("cat", "snapshot", snapshot.id,
                                                        timeout_s=120))["tree"])
        for part in [p for p in path.strip("/").split("/") if p]:
            nodes = self._tree(tree, cache)
            match = [n for n in nodes if n.get("name") == part and n.get("type") == "dir"]
            if not match or not match[0].get("subtree"):
                return {}
            tree = str(match[0]["subtree"])
        out: dict[str, FileNode] = {}
        self._collect(tree, "", out, cache)
        return out

    def _tree(self, tree_id: str,
              cache: MutableMapping[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        if tree_id not in cache:
            doc = json.loads(self.run("cat", "blob", tree_id, timeout_s=120))
            cache[tree_id] = [{k: n[k] for k in ("name", "type", "size", "content", "subtree")
                               if k in n} for n in doc.get("nodes") or []]
        return cache[tree_id]

    def _collect(self, tree_id: str, prefix: str, out: dict[str, FileNode],
                 cache: MutableMapping[str, list[dict[str, Any]]]) -> None:
        for node in self._tree(tree_id, cache):
            rel = prefix + str(node.get("name"))
            if node.get("type") == "file":
                out[rel] = FileNode(rel, int(node.get("size") or 0),
                                    tuple(str(c) for c in node.get("content") or ()))
            elif node.get("type") == "dir" and node.get("subtree"):
                self._collect(str(node["subtree"]), rel + "/", out, cache)

    def restore(self, snapshot_id: str, path: str, target: Path,
                includes: list[str] | None = None) -> Path:
        """``restic restore`` of ``path`` (or only ``includes``, relative to it) into ``target``,
        with restic's own parallel downloads. restic 0.14 recreates the snapshot's full paths
        under ``target``; returns the directory that holds ``path``'s files."""
        base = "/" + path.strip("/")
        args = ["restore", snapshot_id, "--target", str(target)]
        for rel in includes or [""]:
            args += ["--include", f"{base}/{rel.lstrip('/')}".rstrip("/")]
        self.run(*args)
        return target / base.lstrip("/")

    def backup(self, paths: list[Path], *, tags: list[str], host: str) -> Snapshot:
        args = ["backup", "--json", "--host", host]
        for t in tags:
            args += ["--tag", t]
        out = self.run(*args, *[str(p) for p in paths])
        snap_id = ""
        for line in out.splitlines():
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if msg.get("message_type") == "summary":
                snap_id = str(msg.get("snapshot_id", ""))
        if not snap_id:
            raise TargetUnreachable("restic backup printed no snapshot id")
        for s in self.snapshots():
            if s.id.startswith(snap_id):  # restic 0.14 prints the short id in its summary
                return s
        raise TargetUnreachable(f"restic backup made snapshot {snap_id}, but it is not listed")


def read_credentials_file(path: Path) -> dict[str, str]:
    """AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from an AWS-style credentials file's
    ``[default]`` section, read afresh each time (a rotation rewrites the file)."""
    import configparser
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
        section = parser["default"]
        return {"AWS_ACCESS_KEY_ID": section["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": section["aws_secret_access_key"]}
    except (OSError, KeyError, configparser.Error) as exc:
        raise Inconclusive(f"cannot read the backup credentials file {path}: {exc}") from exc


def write_credentials_file(path: Path, access_key: str, secret_key: str) -> None:
    """Atomically (re)write a credentials file, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"[default]\naws_access_key_id = {access_key}\n"
                 f"aws_secret_access_key = {secret_key}\n")
    os.replace(tmp, path)


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) or "(no output)"
