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

Three modules beside this one hold the parts: ``lab/ceph_proc.py`` the daemons as processes
(liveness from /proc, admin sockets), ``lab/ceph_daemons.py`` starting, probing and stopping them,
``lab/ceph_conf.py`` the configuration. This one creates the cluster and its users.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping

from lab.ceph_conf import OSD_MEMORY_TARGET, conf_sections, render_conf
from lab.ceph_daemons import DAEMONS, CephDaemons
from lab.ceph_proc import MON, MON_ID, OSD, OSD_ID, RGW, RGW_ENTITY, CephError, DaemonState

__all__ = ["OSD_MEMORY_TARGET", "RGW_ENTITY", "CephCluster", "CephError", "DaemonState"]

_STATE_FILE = "lab.json"


class CephCluster(CephDaemons):
    """One mon, one BlueStore OSD and one radosgw on 127.0.0.1, all state under ``root``."""

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


    def _write_conf(self, fsid: str) -> None:
        text = render_conf(conf_sections(self, fsid))
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
            raise CephError(f"{exc}\n{self._log_tails(OSD)}") from exc
        state["osd_created"] = True
        self._save_state(state)

    # ------------------------------------------------------------------ public lifecycle

    def up(self, progress: Callable[[str], None] = lambda s: None) -> None:
        """Create the cluster if needed and start whatever is not running; wait for S3."""
        with self._locked():
            state = self._prepare(progress)
            self._start(MON, progress)
            if not state.get("osd_created"):
                self._make_osd(state, progress)
            self._start(OSD, progress)
            self._start(RGW, progress)

    def down(self) -> None:
        """Stop rgw, osd and mon (SIGTERM, then SIGKILL after a grace). Idempotent."""
        if not self.root.exists():
            return
        with self._locked():
            self._stop(RGW, grace=1.0)  # radosgw sits on SIGTERM for up to 120 s
            self._stop(OSD, grace=15.0)
            self._stop(MON, grace=10.0)

    def stop_rgw(self) -> None:
        """Stop only the gateway: S3 becomes unreachable, the cluster keeps running."""
        if not self.root.exists():
            return
        with self._locked():
            self._stop(RGW, grace=1.0)

    def start_rgw(self) -> None:
        """Start the gateway again (mon and OSD must be running); wait until S3 answers."""
        if not self.conf_path.exists():
            raise CephError(f"no cluster in {self.root}; call up() first")
        with self._locked():
            for d in (MON, OSD):
                if self._find_pid(d) is None:
                    raise CephError(f"cannot start rgw: {d.entity} is not running; call up()")
            self._start(RGW, lambda s: None)

    def status(self) -> list[DaemonState]:
        """The state of mon, osd and rgw, as found now."""
        states = []
        for d in DAEMONS:
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
