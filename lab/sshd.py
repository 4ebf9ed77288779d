"""The lab's hosts, reached for real: an OpenSSH server (Debian ``openssh-server``) on 127.0.0.1.

A lab component (see :mod:`lab.components`). ``lab up`` makes, in ``<lab>/sshd/``, a host key and
a client key (ed25519, no passphrase, mode 0600), an ``authorized_keys`` holding only the client
key, a ``known_hosts`` pinning the host key, and an ``sshd_config`` that listens on 127.0.0.1 on a
free port, accepts that key for the user running the lab and nothing else (no passwords, no
keyboard-interactive, no PAM), then starts ``sshd -D``. ``lab down`` stops it.

The lab's machines are all this one, so the hosts it declares (the backup host, the serving node
``gpu-node-0``, the fleet's ``gpu-node-1..3``) are one sshd seen under several names; the drill
still talks to each through testinfra's ssh backend, the same code path a real site uses.

``StrictModes`` is off because the lab lives under directories (``/tmp``) that sshd's ownership
walk would refuse; a real site keeps it on. The lab's model cache path has a declared
``capacity_bytes`` (a directory budget): a drill fills it with sparse files, so it costs no disk.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import DrillbookError
from lab.procs import free_port, live_pid, spawn_detached

if TYPE_CHECKING:
    from lab.ceph import DaemonState
    from lab.components import Progress
    from lab.stack import Lab

SSHD = "/usr/sbin/sshd"
MiB = 1024 * 1024


class SshdError(DrillbookError):
    pass


def directory(lab: Lab) -> Path:
    return lab.root / "sshd"


def client_key(lab: Lab) -> Path:
    return directory(lab) / "drill_ed25519"


def known_hosts(lab: Lab) -> Path:
    return directory(lab) / "known_hosts"


def port(lab: Lab) -> int | None:
    try:
        return int((directory(lab) / "port").read_text())
    except (OSError, ValueError):
        return None


def model_cache(lab: Lab) -> Path:
    """The serving node's cache (``lab.node --cache-dir``): the path node-cache-full fills."""
    return lab.root / "node-cache"


def cache_capacity(lab: Lab) -> int:
    """The cache's declared budget: room for the model and adapter twice over, and some."""
    return 4 * lab.state.model_size + 16 * MiB


def _keygen(path: Path, comment: str) -> None:
    if path.exists():
        return
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                    str(path)], check=True, capture_output=True, timeout=30)
    path.chmod(0o600)


def _config(lab: Lab, p: int) -> str:
    d = directory(lab)
    return "\n".join([
        f"Port {p}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host_ed25519'}",
        f"PidFile {d / 'sshd.pid'}", f"AuthorizedKeysFile {d / 'authorized_keys'}",
        "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "UsePAM no",
        "StrictModes no", f"AllowUsers {getpass.getuser()}", "PrintMotd no",
        "X11Forwarding no", "AllowTcpForwarding no", "PermitTunnel no", "MaxStartups 50:30:100",
        "LogLevel ERROR", ""])


def _accepts(p: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", p), timeout=1) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


class SshServer:
    name = "sshd"

    def pid(self, lab: Lab) -> int | None:
        return live_pid(directory(lab) / "sshd.pid", b"sshd")

    def up(self, lab: Lab, progress: Progress) -> None:
        if not Path(SSHD).exists():
            raise SshdError(f"{SSHD} is missing: install Debian's openssh-server "
                            f"(make lab-deps)")
        d = directory(lab)
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
        _keygen(d / "host_ed25519", "drillbook-lab-host")
        _keygen(client_key(lab), "drillbook-lab-drill")
        p = port(lab)
        if self.pid(lab) is not None and p is not None and _accepts(p):
            return
        self.down(lab)
        p = free_port()
        (d / "port").write_text(str(p))
        shutil.copyfile(client_key(lab).with_suffix(".pub"), d / "authorized_keys")
        (d / "authorized_keys").chmod(0o600)
        host_pub = (d / "host_ed25519.pub").read_text().split()[:2]
        known_hosts(lab).write_text(f"[127.0.0.1]:{p} {' '.join(host_pub)}\n")
        (d / "sshd_config").write_text(_config(lab, p))
        if os.geteuid() == 0:  # sshd's privilege separation wants its empty directory
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        model_cache(lab).mkdir(parents=True, exist_ok=True)
        progress(f"lab: starting sshd on 127.0.0.1:{p} (the lab's hosts, for host checks)")
        spawn_detached([SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
                       log=lab.root / "log" / "sshd.log", env=dict(os.environ), cwd=d)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if _accepts(p):
                return
            time.sleep(0.05)
        raise SshdError(f"sshd did not start on 127.0.0.1:{p}; see {lab.root / 'log/sshd.log'}")

    def down(self, lab: Lab) -> None:
        pid = self.pid(lab)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if self.pid(lab) is None:
                    return
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it exited between the check and the signal

    def status(self, lab: Lab) -> list[DaemonState]:
        from lab.ceph import DaemonState
        pid = self.pid(lab)
        return [DaemonState("sshd", pid, pid is not None, f"127.0.0.1:{port(lab)}")]

    def contribute(self, lab: Lab, inventory: dict[str, Any]) -> None:
        """The lab's hosts and their checks (every one over ssh)."""
        p = port(lab)
        if p is None:
            return
        ssh = {"address": "127.0.0.1", "port": p, "user": getpass.getuser(),
               "key_file": str(client_key(lab)), "known_hosts": str(known_hosts(lab))}
        targets = inventory["targets"]
        mount = {"path": _mount_point(lab.root), "writable": True}
        hosts: dict[str, Any] = {}

        def common() -> dict[str, Any]:  # fresh per host: no YAML anchors in the file
            # 5 s: the lab shares a loaded CI machine, where one ssh round trip can take 2 s
            return {"backend": "ssh", "ssh": dict(ssh), "clock": {"tolerance_s": 5},
                    "mounts": [dict(mount)]}

        backup = [t for t in ("backup-job", "replication-job", "scheduled-backups",
                              "secondary-backups") if t in targets]
        if backup:
            job = targets.get("backup-job", {})
            creds = [{"path": job["credentials_file"], "max_age_days": 90}] \
                if "credentials_file" in job else []
            restic = _version(["restic", "version"])
            hosts["backup-host"] = {
                **common(), "targets": backup, "credentials": creds,
                **({"tools": {"restic": restic}} if restic else {}),
                "checks": [{"socket": f"tcp://127.0.0.1:{lab.state.rgw_port}",
                            "listening": True}]}
        serving = [t for t in ("inference", "inference-adapter") if t in targets]
        hosts["gpu-node-0"] = {
            **common(), "targets": serving,
            "paths": [{"path": str(model_cache(lab)), "factor": 2,
                       "capacity_bytes": cache_capacity(lab)}],
            "serving": [{"process": f"lab.node .*--port {lab.state.node_port}( |$)",
                         "port": lab.state.node_port}]}
        for name, t in targets.items():
            if t.get("kind") == "node" and re.fullmatch(r"gpu-node-\d+", name):
                hosts[name] = {**common(), "targets": [name]}
                del hosts[name]["mounts"]  # the clock only: these are checked in every fleet drill
        inventory["hosts"] = hosts


def _mount_point(path: Path) -> str:
    p = path.resolve()
    while not os.path.ismount(p):
        p = p.parent
    return str(p)


def _version(argv: list[str]) -> str | None:
    """The installed version the lab pins (the lab's tools are what Debian installed)."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except OSError:
        return None
    m = re.search(r"\d+\.\d+(?:\.\d+)*", out)
    return m.group() if m else None
