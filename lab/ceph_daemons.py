"""Starting, finding, probing and stopping the lab cluster's three daemons under one root.

:class:`CephDaemons` knows where each daemon keeps its pid file, admin socket and logs, finds a
running daemon again from another process (pid file checked against /proc), waits until each is
ready (mon leader, OSD active, S3 answering), and stops them. :class:`lab.ceph.CephCluster`
adds creating the cluster, its configuration and its users on top.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from lab.ceph_proc import (
    DAEMONS,
    MON,
    OSD,
    RGW_ENTITY,
    CephError,
    Daemon,
    alive,
    asok_command,
    cmdline,
    file_locked,
    gone,
    matches,
    tail,
)

_ASOK_MAX_PATH = 100  # sun_path holds 108 bytes
_SPAWN_GRACE = 10.0  # seconds for a forked daemon to show up in /proc
#: Readiness probe: an anonymous GET of a bucket that never exists makes the gateway read RADOS,
#: so its 404 NoSuchBucket proves that the OSD serves the metadata pool, not just that HTTP is up.
_PROBE_PATH = "/drillbook-readiness-probe"

__all__ = ["DAEMONS", "CephDaemons"]


class CephDaemons:
    """The mon, OSD and radosgw of one cluster rooted in ``root``: paths, start, probe, stop."""

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

    def _pid_file(self, d: Daemon) -> Path:
        return self.run_dir / f"{d.entity}.pid"

    def _asok(self, d: Daemon) -> Path:
        return self._asok_dir / f"{d.entity}.asok"

    def _log(self, d: Daemon) -> Path:
        return self.log_dir / f"{d.entity}.log"

    def _out(self, d: Daemon) -> Path:
        return self.log_dir / f"{d.entity}.out"

    def env(self) -> dict[str, str]:
        """The environment for Ceph admin tools (``ceph``, ``radosgw-admin``) on this cluster."""
        env = dict(os.environ)
        env["CEPH_CONF"] = str(self.conf_path)
        return env


    # ------------------------------------------------------------------ finding daemons

    def _find_pid(self, d: Daemon) -> int | None:
        """The pid of the running daemon, from its pid file or else by scanning /proc."""
        conf = self.conf_path
        try:
            pid = int(self._pid_file(d).read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid > 0 and alive(pid) and matches(cmdline(pid), d, conf):
            return pid
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            candidate = int(entry.name)
            if matches(cmdline(candidate), d, conf) and alive(candidate):
                return candidate
        return None

    def _log_tails(self, d: Daemon) -> str:
        parts = []
        for path in (self._out(d), self._log(d)):
            text = tail(path)
            if text.strip():
                parts.append(f"--- tail of {path} ---\n{text}")
        return "\n".join(parts) if parts else f"(no log output in {self.log_dir})"

    def _fail(self, d: Daemon, what: str) -> CephError:
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
            state = asok_command(self._asok(MON), "mon_status").get("state")
        except (OSError, ValueError, TypeError):
            return None
        return str(state) if state is not None else None

    def _osd_state(self) -> str | None:
        try:
            state = asok_command(self._asok(OSD), "status").get("state")
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

    def _ready(self, d: Daemon) -> tuple[bool, str]:
        if d is MON:
            mstate = self._mon_state()
            return mstate == "leader", f"mon state {mstate or 'unknown'}"
        if d is OSD:
            ostate = self._osd_state()
            return ostate == "active", f"osd state {ostate or 'unknown'}"
        code = self._s3_status()
        if code is None:
            return False, f"S3 not answering at {self.endpoint}"
        return True, f"S3 answers HTTP {code} at {self.endpoint}"

    # ------------------------------------------------------------------ start / stop one daemon

    def _clear_stale(self, d: Daemon) -> None:
        """Remove the pid file and admin socket of a dead daemon, once it has let go of them."""
        pid_file = self._pid_file(d)
        deadline = time.monotonic() + _SPAWN_GRACE
        while file_locked(pid_file):
            # A killed daemon whose last threads are still exiting: its files, ports and the
            # store lock are released together with the pid-file lock.
            if time.monotonic() > deadline:
                raise self._fail(d, f"{pid_file} is still locked by a process that is not running")
            time.sleep(0.05)
        for path in (self._pid_file(d), self._asok(d)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _start(self, d: Daemon, progress: Callable[[str], None]) -> None:
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

    def _spawn(self, d: Daemon) -> None:
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

    def _stop(self, d: Daemon, grace: float) -> None:
        pid = self._find_pid(d)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while not gone(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not gone(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + _SPAWN_GRACE
                while not gone(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not gone(pid):
                    raise self._fail(d, f"pid {pid} survived SIGKILL")
        self._clear_stale(d)

