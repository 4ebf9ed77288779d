"""Small helpers every lab part needs: free ports, detached long-lived processes, pid files
checked against /proc, and state files written atomically (private when they hold keys).

They lived in five copies with small differences (one missed dead-but-unreaped processes, one
compared whole argv elements); this is the one version.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def spawn_detached(argv: list[str], *, log: Path, env: dict[str, str], cwd: Path) -> int:
    """Start a long-lived lab process that outlives this one (its own session, reparented to
    init), and return its pid once it has exec'd. A shell forks it and exits at once, so no
    Popen object is left waiting on a child that is meant to keep running."""
    log.parent.mkdir(parents=True, exist_ok=True)
    script = 'exec "$@" >>' + shlex.quote(str(log)) + ' 2>&1 </dev/null & echo $!'
    out = subprocess.run(["/bin/sh", "-c", script, "sh", *argv], env=env, cwd=cwd,
                         capture_output=True, text=True, check=True, start_new_session=True)
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/exe").resolve() != Path("/bin/sh").resolve():
                break
        except OSError:
            break
        time.sleep(0.01)
    return pid


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def proc_alive(pid: int | None, *markers: bytes) -> bool:
    """A live process (running or stopped, not a zombie) whose command line contains every
    marker: a recycled pid that now belongs to something else does not count."""
    if pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()
    return bool(state) and state[0] not in ("Z", "X") and all(m in cmdline for m in markers)


def live_pid(pid_file: Path, *markers: bytes) -> int | None:
    """The pid in ``pid_file`` if that process is alive and is the one we started."""
    pid = read_pid(pid_file)
    return pid if proc_alive(pid, *markers) else None


def write_json(path: Path, doc: Any, *, private: bool = False) -> None:
    """Replace ``path`` atomically; ``private`` files (keys, passwords) are created mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=2)
    os.replace(tmp, path)
