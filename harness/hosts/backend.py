"""A declared host as a testinfra ``Host``, and the one place its errors are translated.

testinfra is used as a library: :func:`testinfra.get_host` with the ``local`` backend or the
``ssh`` backend (the OpenSSH client, so the site's ssh configuration, agents and jump hosts keep
working). ssh runs in batch mode: it never asks for a password, and a host key that does not
match ``known_hosts`` is a refusal, not a prompt. One multiplexed connection per host carries a
phase's checks (a dozen handshakes cost seconds on a loaded machine and would blur the clock
check); :meth:`Host.close` ends it after each phase, so no ssh master outlives a drill.

What goes into evidence must never carry the key: the ssh command line (which names the key file)
is never quoted, and :func:`redact` removes the key path from any text that came back.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Protocol

import testinfra

from harness.errors import TargetUnreachable
from harness.hosts.spec import HostSpec


class CommandResult(Protocol):
    rc: int
    stdout: str
    stderr: str


class HostUnreachable(TargetUnreachable):
    """The host could not be reached or a command could not be started on it."""


class Host:
    """One declared host: runs commands and exposes testinfra's modules."""

    def __init__(self, spec: HostSpec, *, timeout_s: int = 10) -> None:
        self.spec = spec
        self.name = spec.name
        self.backend = spec.backend
        self.control = _control_path(spec) if spec.ssh is not None else None
        self._ti: Any = _testinfra_host(spec, timeout_s, self.control)

    def close(self) -> None:
        """End the multiplexed ssh connection, if one is open (idempotent)."""
        if self.spec.ssh is None or self.control is None or not self.control.exists():
            return
        ssh = self.spec.ssh
        subprocess.run(["ssh", "-o", f"ControlPath={self.control}", "-O", "exit", "-p",
                        str(ssh.port), f"{ssh.user}@{ssh.address}"],
                       capture_output=True, timeout=10, check=False)

    @property
    def ti(self) -> Any:
        """The testinfra Host (``.file()``, ``.package()``, ``.service()``, ``.socket()``...)."""
        return self._ti

    def run(self, command: str, *args: str) -> CommandResult:
        """Run ``command`` (``%s`` placeholders are filled with shell-quoted ``args``)."""
        try:
            result: CommandResult = self._ti.run(command, *args)
        except Exception as exc:  # noqa: BLE001 - testinfra raises RuntimeError/OSError/...
            raise HostUnreachable(f"{self.name} ({self.backend}): "
                                  f"{redact(self.spec, _describe(exc))}") from None
        return result

    def call(self, fn: Any, *args: Any) -> Any:
        """Call a testinfra module property/method, translating its errors."""
        try:
            return fn(*args)
        except (AssertionError, ValueError, NotImplementedError):
            raise
        except Exception as exc:  # noqa: BLE001 - as in run()
            raise HostUnreachable(f"{self.name} ({self.backend}): "
                                  f"{redact(self.spec, _describe(exc))}") from None


def _describe(exc: BaseException) -> str:
    # testinfra's ssh backend raises RuntimeError(CommandResult) on exit 255: keep ssh's own
    # message (stderr), never the command line
    arg = exc.args[0] if exc.args else None
    stderr = getattr(arg, "stderr", None)
    if isinstance(stderr, str):
        text = stderr.strip().splitlines()
        return "ssh failed: " + (text[-1] if text else "exit status 255")
    return f"{type(exc).__name__}: {exc}"


def redact(spec: HostSpec, text: str) -> str:
    """``text`` with the host's key file path (and its known_hosts path) taken out."""
    if spec.ssh is not None:
        for secret in (str(spec.ssh.key_file),):
            text = text.replace(secret, "<key file>")
    return text


def _control_path(spec: HostSpec) -> Path:
    # a unix socket path must stay under ~100 bytes: a short hash in a private directory
    d = Path(tempfile.gettempdir()) / f"drillbook-ssh-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    ssh = spec.ssh
    assert ssh is not None
    key = f"{ssh.user}@{ssh.address}:{ssh.port}:{spec.name}:{os.getpid()}"
    return d / hashlib.sha256(key.encode()).hexdigest()[:16]


def _testinfra_host(spec: HostSpec, timeout_s: int, control: Path | None) -> Any:
    if spec.backend == "local":
        return testinfra.get_host("local://")
    ssh = spec.ssh
    assert ssh is not None, "the inventory guarantees ssh access for an ssh host"
    extra = ["-o BatchMode=yes", "-o PasswordAuthentication=no",
             "-o KbdInteractiveAuthentication=no", "-o IdentitiesOnly=yes",
             "-o StrictHostKeyChecking=yes", "-o LogLevel=ERROR"]
    if ssh.known_hosts is not None:
        extra.append("-o " + shlex.quote(f"UserKnownHostsFile={ssh.known_hosts}"))
    if control is not None:
        # given here, not through testinfra's controlpath (which it %-formats); the master
        # ends after 30 s idle even if close() is never reached
        extra += ["-o ControlMaster=auto", "-o ControlPersist=30s",
                  "-o " + shlex.quote(f"ControlPath={control}")]
    return testinfra.get_host(
        f"ssh://{ssh.user}@{ssh.address}:{ssh.port}", ssh_identity_file=str(ssh.key_file),
        ssh_extra_args=" ".join(extra), timeout=timeout_s, controlpersist=0)
