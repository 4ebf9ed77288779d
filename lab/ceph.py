"""A single-node Ceph cluster with a RADOS Gateway (S3), rooted in one directory, without systemd.

The lab's object store: one monitor, one BlueStore OSD on a sparse file and one radosgw, all bound
to 127.0.0.1, all state (configuration, data, pid files, admin sockets, logs) under ``root``.
Daemons use Ceph's own daemon mode, so they outlive the Python process that started them: a
``lab up`` command can exit while the lab keeps running, and a later process finds the daemons
again through their pid files (checked against /proc, so zombies and reused pids are rejected).

``CephCluster.up()`` is idempotent: it creates the cluster on the first call and afterwards starts
only the daemons that are not running (after a reboot or a ``kill -9``). It returns once the S3
endpoint answers HTTP. The settings applied here were each found necessary on this kind of machine
(see shared/notes/ceph-rgw-on-one-machine.md): a msgr2-only monmap, no cephx, pool size 1, a short
paxos propose interval, and BlueStore creating its own block file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CephCluster", "CephError", "DaemonState"]

MON_ID = "a"
OSD_ID = 0
RGW_ENTITY = "client.rgw.gw"
#: Ceph refuses an osd_memory_target below this (896 MiB); it is a target, not a hard limit.
OSD_MEMORY_TARGET = 939_524_096
_STATE_FILE = "lab.json"
_ASOK_MAX_PATH = 100  # sun_path holds 108 bytes
_LOG_TAIL_LINES = 25
_SPAWN_GRACE = 10.0  # seconds for a forked daemon to show up in /proc
#: Readiness probe: an anonymous GET of a bucket that never exists makes the gateway read RADOS,
#: so its 404 NoSuchBucket proves that the OSD serves the metadata pool, not just that HTTP is up.
_PROBE_PATH = "/drillbook-readiness-probe"


class CephError(Exception):
    """A lab daemon or admin command failed; the message carries the relevant log tail."""


@dataclass(frozen=True)
class DaemonState:
    """What ``CephCluster.status()`` reports for one daemon."""

    name: str
    pid: int | None
    running: bool
    detail: str


@dataclass(frozen=True)
class _Daemon:
    short: str  # "mon", "osd", "rgw": the name reported by status()
    entity: str  # Ceph entity name: mon.a, osd.0, client.rgw.gw
    binary: str
    ident: tuple[str, ...]  # arguments naming the daemon on its command line

    def command(self, conf: Path) -> list[str]:
        return [self.binary, *self.ident, "-c", str(conf)]


_MON = _Daemon("mon", f"mon.{MON_ID}", "ceph-mon", ("-i", MON_ID))
_OSD = _Daemon("osd", f"osd.{OSD_ID}", "ceph-osd", ("-i", str(OSD_ID)))
_RGW = _Daemon("rgw", RGW_ENTITY, "radosgw", ("-n", RGW_ENTITY))
_DAEMONS = (_MON, _OSD, _RGW)


# --------------------------------------------------------------------------- process helpers


def _proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    _, _, rest = raw.rpartition(")")
    fields = rest.split()
    return fields[0] if fields else None


def _alive(pid: int) -> bool:
    state = _proc_state(pid)
    return state is not None and state not in ("Z", "X", "x")


def _gone(pid: int) -> bool:
    """True once every thread of ``pid`` has exited (a zombie leader alone counts as gone).

    After SIGKILL the thread-group leader turns into a zombie before its other threads have
    finished exiting; until the last one has, the process still holds its files and locks.
    """
    state = _proc_state(pid)
    if state is None:
        return True
    if state not in ("Z", "X", "x"):
        return False
    try:
        return len(os.listdir(f"/proc/{pid}/task")) <= 1
    except OSError:
        return True


def _file_locked(path: Path) -> bool:
    """Whether another process holds a POSIX lock on ``path`` (Ceph locks its pid file)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _matches(argv: list[str], daemon: _Daemon, conf: Path) -> bool:
    if not argv or os.path.basename(argv[0]) != daemon.binary:
        return False
    if str(conf) not in argv or "--mkfs" in argv:
        return False
    n = len(daemon.ident)
    return any(tuple(argv[i : i + n]) == daemon.ident for i in range(len(argv) - n + 1))


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _asok_command(path: Path, prefix: str, timeout: float = 5.0) -> dict[str, object]:
    """Send one command to a Ceph admin socket and decode its JSON answer.

    The protocol: the request is a JSON command terminated by NUL; the answer is a 4-byte
    big-endian length followed by that many bytes.
    """
    request = json.dumps({"prefix": prefix, "format": "json"}).encode() + b"\0"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(request)
        header = _recv_exact(sock, 4)
        (length,) = struct.unpack(">I", header)
        payload = _recv_exact(sock, length)
    decoded = json.loads(payload.decode("utf-8", "replace"))
    if not isinstance(decoded, dict):
        raise TypeError(f"unexpected admin socket answer: {decoded!r}")
    return decoded


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("admin socket closed early")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _render_conf(sections: Mapping[str, Mapping[str, object]]) -> str:
    out: list[str] = ["# Written by drillbook lab/ceph.py; rewritten on every up().", ""]
    for section, options in sections.items():
        out.append(f"[{section}]")
        out.extend(f"{key} = {value}" for key, value in options.items())
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- the cluster


class CephCluster:
    """One mon, one BlueStore OSD and one radosgw on 127.0.0.1, all state under ``root``."""

    def __init__(
        self,
        root: Path,
        mon_port: int,
        rgw_port: int,
        osd_size_bytes: int = 8 * 1024**3,
        *,
        timeout: float = 90.0,
        extra_rgw_conf: Mapping[str, str] | None = None,
    ) -> None:
        """``timeout`` bounds each wait for a daemon; ``extra_rgw_conf`` adds options to the
        gateway's section (e.g. ``{"rgw_lc_debug_interval": "10"}`` for lifecycle drills).

        ``mon_port`` is fixed when the cluster is created (it is in the monmap); ``rgw_port`` may
        change between runs. ``osd_size_bytes`` only matters when the OSD is created.
        """
        self.root = Path(root).absolute()
        self.mon_port = mon_port
        self.rgw_port = rgw_port
        self.osd_size_bytes = osd_size_bytes
        self.timeout = timeout
        self.extra_rgw_conf = dict(extra_rgw_conf or {})

    # ------------------------------------------------------------------ paths and properties

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.rgw_port}"

    @property
    def conf_path(self) -> Path:
        return self.root / "ceph.conf"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def _asok_dir(self) -> Path:
        """Admin sockets live in root/run unless that path is too long for a Unix socket."""
        candidate = self.run_dir
        if len(str(candidate / f"{RGW_ENTITY}.asok")) <= _ASOK_MAX_PATH:
            return candidate
        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"drillbook-asok-{digest}"

    def _pid_file(self, d: _Daemon) -> Path:
        return self.run_dir / f"{d.entity}.pid"

    def _asok(self, d: _Daemon) -> Path:
        return self._asok_dir / f"{d.entity}.asok"

    def _log(self, d: _Daemon) -> Path:
        return self.log_dir / f"{d.entity}.log"

    def _out(self, d: _Daemon) -> Path:
        return self.log_dir / f"{d.entity}.out"

    def env(self) -> dict[str, str]:
        """The environment for Ceph admin tools (``ceph``, ``radosgw-admin``) on this cluster."""
        env = dict(os.environ)
        env["CEPH_CONF"] = str(self.conf_path)
        return env

    # ------------------------------------------------------------------ configuration and state

    def _load_state(self) -> dict[str, object]:
        path = self.root / _STATE_FILE
        if not path.exists():
            return {}
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CephError(f"cannot read lab state {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise CephError(f"lab state {path} is not a JSON object")
        return loaded

    def _save_state(self, state: Mapping[str, object]) -> None:
        path = self.root / _STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)

    def _conf_sections(self, fsid: str) -> dict[str, dict[str, object]]:
        r = self.root
        asok = self._asok_dir
        per_daemon = {
            "pid_file": f"{self.run_dir}/$name.pid",
            "admin_socket": f"{asok}/$name.asok",
            "log_file": f"{self.log_dir}/$name.log",
        }
        rgw: dict[str, object] = {
            **per_daemon,
            "rgw_frontends": f"beast endpoint=127.0.0.1:{self.rgw_port}",
            "rgw_data": f"{r}/rgw",
            "rgw_thread_pool_size": 64,
            # Deleted objects are reclaimed by garbage collection: make it run soon (default 2 h).
            "rgw_gc_obj_min_wait": 10,
            "rgw_gc_processor_period": 15,
            "rgw_gc_processor_max_time": 15,
            **self.extra_rgw_conf,
        }
        return {
            "global": {
                "fsid": fsid,
                "mon_host": f"v2:127.0.0.1:{self.mon_port}",
                "ms_bind_msgr1": "false",
                "ms_bind_msgr2": "true",
                "public_addr": "127.0.0.1",
                "cluster_addr": "127.0.0.1",
                "auth_cluster_required": "none",
                "auth_service_required": "none",
                "auth_client_required": "none",
                "run_dir": str(self.run_dir),
                "crash_dir": f"{r}/crash",
                "mon_cluster_log_file": f"{self.log_dir}/cluster.log",
                "osd_pool_default_size": 1,
                "osd_pool_default_min_size": 1,
                "osd_pool_default_pg_num": 8,
                "osd_pool_default_pgp_num": 8,
                "osd_pool_default_pg_autoscale_mode": "off",
                "mon_allow_pool_size_one": "true",
                "mon_warn_on_pool_no_redundancy": "false",
                "mon_max_pg_per_osd": 1000,
                "osd_crush_chooseleaf_type": 0,
                "paxos_propose_interval": 0.05,
                # A nearly full host disk must not make the mon shut itself down mid-drill.
                "mon_data_avail_crit": 0,
                "mon_data_avail_warn": 1,
                # Without cephx these warnings are noise in `ceph health`.
                "mon_warn_on_insecure_global_id_reclaim": "false",
                "mon_warn_on_insecure_global_id_reclaim_allowed": "false",
            },
            "client": {
                "ms_mon_client_mode": "crc",
                "client_mount_timeout": 30,
                "rados_mon_op_timeout": 60,
                "rados_osd_op_timeout": 60,
            },
            "mon": {
                **per_daemon,
                "mon_data": f"{r}/mon/$id",
            },
            "osd": {
                **per_daemon,
                "osd_data": f"{r}/osd/$id",
                "osd_objectstore": "bluestore",
                "bluestore_block_create": "true",
                "bluestore_block_size": self.osd_size_bytes,
                "osd_memory_target": OSD_MEMORY_TARGET,
                "osd_memory_target_autotune": "false",
                "bluestore_cache_autotune": "true",
            },
            RGW_ENTITY: rgw,
        }

    def _write_conf(self, fsid: str) -> None:
        text = _render_conf(self._conf_sections(fsid))
        path = self.conf_path
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return
        tmp = path.with_suffix(".conf.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down/start/stop across processes sharing this root."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "lab.lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ finding daemons

    def _find_pid(self, d: _Daemon) -> int | None:
        """The pid of the running daemon, from its pid file or else by scanning /proc."""
        conf = self.conf_path
        try:
            pid = int(self._pid_file(d).read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid > 0 and _alive(pid) and _matches(_cmdline(pid), d, conf):
            return pid
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            candidate = int(entry.name)
            if _matches(_cmdline(candidate), d, conf) and _alive(candidate):
                return candidate
        return None

    def _log_tails(self, d: _Daemon) -> str:
        parts = []
        for path in (self._out(d), self._log(d)):
            text = _tail(path)
            if text.strip():
                parts.append(f"--- tail of {path} ---\n{text}")
        return "\n".join(parts) if parts else f"(no log output in {self.log_dir})"

    def _fail(self, d: _Daemon, what: str) -> CephError:
        return CephError(f"{d.entity}: {what}\n{self._log_tails(d)}")

    # ------------------------------------------------------------------ running commands

    def _run(
        self, argv: list[str], what: str, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                argv,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout if timeout is not None else self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CephError(
                f"{what}: {' '.join(argv)} timed out after {exc.timeout:.0f} s"
            ) from exc
        except OSError as exc:
            raise CephError(f"{what}: cannot run {argv[0]}: {exc}") from exc
        if proc.returncode != 0:
            raise CephError(
                f"{what}: {' '.join(argv)} exited {proc.returncode}\n"
                f"{(proc.stderr or proc.stdout).strip()}"
            )
        return proc

    def admin(self, *args: str) -> str:
        """Run ``radosgw-admin`` on this cluster; return stdout, raise CephError on failure."""
        return self._run(["radosgw-admin", *args], "radosgw-admin").stdout

    def ceph(self, *args: str) -> str:
        """Run the ``ceph`` CLI on this cluster; return stdout, raise CephError on failure."""
        argv = ["ceph", "--connect-timeout", str(int(self.timeout)), *args]
        return self._run(argv, "ceph").stdout

    # ------------------------------------------------------------------ readiness probes

    def _mon_state(self) -> str | None:
        try:
            state = _asok_command(self._asok(_MON), "mon_status").get("state")
        except (OSError, ValueError, TypeError):
            return None
        return str(state) if state is not None else None

    def _osd_state(self) -> str | None:
        try:
            state = _asok_command(self._asok(_OSD), "status").get("state")
        except (OSError, ValueError, TypeError):
            return None
        return str(state) if state is not None else None

    def _s3_status(self, timeout: float = 5.0) -> int | None:
        """HTTP status of an anonymous S3 request (see _PROBE_PATH), or None if none arrives."""
        conn = http.client.HTTPConnection("127.0.0.1", self.rgw_port, timeout=timeout)
        try:
            conn.request("GET", _PROBE_PATH)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def _ready(self, d: _Daemon) -> tuple[bool, str]:
        if d is _MON:
            mstate = self._mon_state()
            return mstate == "leader", f"mon state {mstate or 'unknown'}"
        if d is _OSD:
            ostate = self._osd_state()
            return ostate == "active", f"osd state {ostate or 'unknown'}"
        code = self._s3_status()
        if code is None:
            return False, f"S3 not answering at {self.endpoint}"
        return True, f"S3 answers HTTP {code} at {self.endpoint}"

    # ------------------------------------------------------------------ start / stop one daemon

    def _clear_stale(self, d: _Daemon) -> None:
        """Remove the pid file and admin socket of a dead daemon, once it has let go of them."""
        pid_file = self._pid_file(d)
        deadline = time.monotonic() + _SPAWN_GRACE
        while _file_locked(pid_file):
            # A killed daemon whose last threads are still exiting: its files, ports and the
            # store lock are released together with the pid-file lock.
            if time.monotonic() > deadline:
                raise self._fail(d, f"{pid_file} is still locked by a process that is not running")
            time.sleep(0.05)
        for path in (self._pid_file(d), self._asok(d)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _start(self, d: _Daemon, progress: Callable[[str], None]) -> None:
        """Start ``d`` unless it is running, then wait until it is ready.

        A daemon found running but not ready is waited for; if it dies meanwhile (e.g. it was
        just killed and had not yet been reaped) it is started like a missing one.
        """
        deadline = time.monotonic() + self.timeout
        spawned_at: float | None = None
        seen_since_spawn = False
        detail = "no process"
        announced = False
        while True:
            pid = self._find_pid(d)
            if pid is not None:
                ok, detail = self._ready(d)
                if ok:
                    if spawned_at is not None or announced:
                        progress(f"{d.short} ready: {detail}")
                    return
                if spawned_at is not None:
                    seen_since_spawn = True
                elif not announced:
                    progress(f"{d.short} running (pid {pid}), waiting: {detail}")
                    announced = True
            elif spawned_at is None:
                progress(f"starting {d.short}")
                self._clear_stale(d)
                self._spawn(d)
                spawned_at = time.monotonic()
                deadline = max(deadline, spawned_at + self.timeout)
                continue
            elif seen_since_spawn or time.monotonic() - spawned_at > _SPAWN_GRACE:
                # The launcher has returned, so a process that is gone (or never showed) is dead.
                raise self._fail(d, "daemon exited during start-up")
            if time.monotonic() > deadline:
                raise self._fail(d, f"not ready within {self.timeout:.0f} s ({detail})")
            time.sleep(0.1)

    def _spawn(self, d: _Daemon) -> None:
        """Launch the daemon in Ceph's daemon mode; the launcher returns once it has forked."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._asok_dir.mkdir(parents=True, exist_ok=True)
        argv = d.command(self.conf_path)
        with self._out(d).open("ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
            out.flush()
            try:
                proc = subprocess.run(
                    argv,
                    env=self.env(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=self.timeout,
                    start_new_session=True,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise self._fail(d, f"launcher did not return within {self.timeout:.0f} s") from exc
        if proc.returncode != 0:
            raise self._fail(d, f"failed to start ({' '.join(argv)} exited {proc.returncode})")

    def _stop(self, d: _Daemon, grace: float) -> None:
        pid = self._find_pid(d)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while not _gone(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _gone(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + _SPAWN_GRACE
                while not _gone(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not _gone(pid):
                    raise self._fail(d, f"pid {pid} survived SIGKILL")
        self._clear_stale(d)

    # ------------------------------------------------------------------ creation

    def _prepare(self, progress: Callable[[str], None]) -> dict[str, object]:
        """Create directories, state and configuration; make the mon store if missing."""
        for sub in ("run", "log", "mon", "osd", "rgw", "crash"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        state = self._load_state()
        if not state:
            progress(f"creating cluster in {self.root}")
            state = {
                "fsid": str(uuid.uuid4()),
                "mon_port": self.mon_port,
                "osd_uuid": str(uuid.uuid4()),
                "mon_created": False,
                "osd_created": False,
            }
            self._save_state(state)
        if state.get("mon_port") != self.mon_port:
            raise CephError(
                f"{self.root} holds a cluster whose monitor uses port {state.get('mon_port')}, "
                f"not {self.mon_port}; destroy it or use the same port"
            )
        self._write_conf(str(state["fsid"]))
        if not state.get("mon_created"):
            self._make_mon(str(state["fsid"]), progress)
            state["mon_created"] = True
            self._save_state(state)
        return state

    def _make_mon(self, fsid: str, progress: Callable[[str], None]) -> None:
        progress("creating mon store")
        mon_dir = self.root / "mon" / MON_ID
        shutil.rmtree(mon_dir, ignore_errors=True)
        monmap = self.root / "monmap"
        self._run(
            [
                "monmaptool",
                "--create",
                "--clobber",
                "--fsid",
                fsid,
                "--addv",
                MON_ID,
                f"[v2:127.0.0.1:{self.mon_port}]",
                str(monmap),
            ],
            "monmaptool",
        )
        self._run(
            [
                "ceph-mon",
                "--mkfs",
                "-i",
                MON_ID,
                "--monmap",
                str(monmap),
                "-c",
                str(self.conf_path),
            ],
            "ceph-mon --mkfs",
        )

    def _make_osd(self, state: dict[str, object], progress: Callable[[str], None]) -> None:
        progress("creating OSD (BlueStore on a sparse file)")
        osd_uuid = str(state["osd_uuid"])
        got = self.ceph("osd", "new", osd_uuid, str(OSD_ID)).strip()
        if got != str(OSD_ID):
            raise CephError(f"ceph osd new gave id {got!r}, expected {OSD_ID}")
        osd_dir = self.root / "osd" / str(OSD_ID)
        shutil.rmtree(osd_dir, ignore_errors=True)
        osd_dir.mkdir(parents=True)
        try:
            self._run(
                [
                    "ceph-osd",
                    "--mkfs",
                    "-i",
                    str(OSD_ID),
                    "--osd-uuid",
                    osd_uuid,
                    "-c",
                    str(self.conf_path),
                ],
                "ceph-osd --mkfs",
            )
        except CephError as exc:
            raise CephError(f"{exc}\n{self._log_tails(_OSD)}") from exc
        state["osd_created"] = True
        self._save_state(state)

    # ------------------------------------------------------------------ public lifecycle

    def up(self, progress: Callable[[str], None] = lambda s: None) -> None:
        """Create the cluster if needed and start whatever is not running; wait for S3."""
        with self._locked():
            state = self._prepare(progress)
            self._start(_MON, progress)
            if not state.get("osd_created"):
                self._make_osd(state, progress)
            self._start(_OSD, progress)
            self._start(_RGW, progress)

    def down(self) -> None:
        """Stop rgw, osd and mon (SIGTERM, then SIGKILL after a grace). Idempotent."""
        if not self.root.exists():
            return
        with self._locked():
            self._stop(_RGW, grace=1.0)  # radosgw sits on SIGTERM for up to 120 s
            self._stop(_OSD, grace=15.0)
            self._stop(_MON, grace=10.0)

    def stop_rgw(self) -> None:
        """Stop only the gateway: S3 becomes unreachable, the cluster keeps running."""
        if not self.root.exists():
            return
        with self._locked():
            self._stop(_RGW, grace=1.0)

    def start_rgw(self) -> None:
        """Start the gateway again (mon and OSD must be running); wait until S3 answers."""
        if not self.conf_path.exists():
            raise CephError(f"no cluster in {self.root}; call up() first")
        with self._locked():
            for d in (_MON, _OSD):
                if self._find_pid(d) is None:
                    raise CephError(f"cannot start rgw: {d.entity} is not running; call up()")
            self._start(_RGW, lambda s: None)

    def status(self) -> list[DaemonState]:
        """The state of mon, osd and rgw, as found now."""
        states = []
        for d in _DAEMONS:
            pid = self._find_pid(d) if self.root.exists() else None
            if pid is None:
                states.append(DaemonState(d.short, None, False, "not running"))
                continue
            _, detail = self._ready(d)
            states.append(DaemonState(d.short, pid, True, detail))
        return states

    def ensure_user(self, uid: str, display_name: str) -> tuple[str, str]:
        """Create the S3 user if missing; return its (access_key, secret_key)."""
        try:
            info = self.admin("user", "info", f"--uid={uid}")
        except CephError as exc:
            if "no user info saved" not in str(exc) and "could not fetch user info" not in str(exc):
                raise
            info = self.admin("user", "create", f"--uid={uid}", f"--display-name={display_name}")
        keys = self._s3_keys(info, uid)
        if not keys:
            info = self.admin(
                "key", "create", f"--uid={uid}", "--key-type=s3", "--gen-access-key", "--gen-secret"
            )
            keys = self._s3_keys(info, uid)
        if not keys:
            raise CephError(f"user {uid} has no S3 key even after key create")
        return keys[0]

    @staticmethod
    def _s3_keys(info_json: str, uid: str) -> list[tuple[str, str]]:
        try:
            info = json.loads(info_json)
        except ValueError as exc:
            raise CephError(f"radosgw-admin gave non-JSON user info: {info_json[:200]!r}") from exc
        out = []
        for key in info.get("keys", []):
            if key.get("user") in (uid, None) and key.get("access_key") and key.get("secret_key"):
                out.append((str(key["access_key"]), str(key["secret_key"])))
        return out

    def destroy(self) -> None:
        """Stop every daemon and remove the whole root directory."""
        asok_dir = self._asok_dir
        self.down()
        shutil.rmtree(self.root, ignore_errors=True)
        if asok_dir != self.run_dir:
            shutil.rmtree(asok_dir, ignore_errors=True)
        if self.root.exists():
            raise CephError(f"could not remove {self.root}")
