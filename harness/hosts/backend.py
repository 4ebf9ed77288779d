"""A declared host as a testinfra ``Host``, and the one place its errors are translated.

testinfra is used as a library: :func:`testinfra.get_host` with the ``local`` backend or the
``ssh`` backend (the OpenSSH client, so the site's ssh configuration, agents and jump hosts keep
working). ssh runs in batch mode: it never asks for a password, and a host key that does not
match ``known_hosts`` is a refusal, not a prompt. No ControlMaster is left running after a drill.

What goes into evidence must never carry the key: the ssh command line (which names the key file)
is never quoted, and :func:`redact` removes the key path from any text that came back.
"""

from __future__ import annotations

import shlex
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
        self._ti: Any = _testinfra_host(spec, timeout_s)

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


def _testinfra_host(spec: HostSpec, timeout_s: int) -> Any:
    if spec.backend == "local":
        return testinfra.get_host("local://")
    ssh = spec.ssh
    assert ssh is not None, "the inventory guarantees ssh access for an ssh host"
    extra = ["-o BatchMode=yes", "-o PasswordAuthentication=no",
             "-o KbdInteractiveAuthentication=no", "-o IdentitiesOnly=yes",
             "-o StrictHostKeyChecking=yes", "-o LogLevel=ERROR"]
    if ssh.known_hosts is not None:
        extra.append("-o " + shlex.quote(f"UserKnownHostsFile={ssh.known_hosts}"))
    return testinfra.get_host(
        f"ssh://{ssh.user}@{ssh.address}:{ssh.port}", ssh_identity_file=str(ssh.key_file),
        ssh_extra_args=" ".join(extra), timeout=timeout_s, controlpersist=0)
