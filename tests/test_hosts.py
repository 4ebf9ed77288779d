"""Host checks on the ``local`` backend against temporary directories: no lab, no ssh server."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from datetime import timedelta
from pathlib import Path

from harness.hosts.backend import Host
from harness.hosts.checks import (
    clock,
    credential_file,
    free_space,
    mount,
    serving,
    size,
    tool_version,
)
from harness.hosts.site import run_site_check
from harness.hosts.spec import (
    CredentialFile,
    HostSpec,
    MountSpec,
    Serving,
    SiteCheck,
    SpacePath,
)
from harness.integrity import Manifest, ManifestEntry
from harness.model import utc_now

LOCAL = Host(HostSpec("drill-host", "local"))


def test_free_space_within_a_budget(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    # du counts the directory itself against the budget: 4 KiB on ext4, 40 B on tmpfs
    folder = cache.stat().st_size
    p = SpacePath(str(cache), factor=2, capacity_bytes=12288)
    ok = free_space(LOCAL, p, "checkpoint", 1000)
    assert ok.ok is True and ok.found.startswith(
        f"{size(12288 - folder)} free (holds {size(folder)} of its 12.0 KiB)"), ok.found
    # a sparse ballast: counts against the budget, costs no disk (leaves about 1.2 KiB)
    (cache / "ballast").touch()
    os.truncate(cache / "ballast", 12288 - folder - 1240)
    full = free_space(LOCAL, p, "checkpoint", 1000)
    assert full.ok is False and full.expected == ">= 2.0 KiB free (the checkpoint is 1000 B x 2)"
    assert str(cache) in full.fix and "1.2 KiB free" in full.fix and "free or expand" in full.fix


def test_free_space_of_a_missing_path_is_missed(tmp_path: Path) -> None:
    r = free_space(LOCAL, SpacePath(str(tmp_path / "nope")), "w", 10)
    assert r.ok is False and "cannot stat" in r.found


def test_free_space_without_a_size_could_not_run(tmp_path: Path) -> None:
    r = free_space(LOCAL, SpacePath(str(tmp_path)), "w", None)
    assert r.ok is None and "min_free_bytes" in r.fix


def _tool(tmp_path: Path, version: str) -> str:
    path = tmp_path / "mytool"
    path.write_text(f"#!/bin/sh\necho 'mytool {version} compiled with go'\n")
    path.chmod(0o755)
    return str(path)


def test_tool_version_pins_a_prefix(tmp_path: Path) -> None:
    tool = _tool(tmp_path, "0.16.4")
    assert tool_version(LOCAL, tool, "0.16").ok is True
    wrong = tool_version(LOCAL, tool, "0.17")
    assert wrong.ok is False and wrong.found == "version 0.16.4" and "pins 0.17" in wrong.fix
    missing = tool_version(LOCAL, str(tmp_path / "absent"), "1")
    assert missing.ok is False and missing.found == "not installed"


def test_credential_file_mode_and_age(tmp_path: Path) -> None:
    creds = tmp_path / "backup-credentials"
    creds.write_text("[default]\naws_secret_access_key = s3cr3t\n")
    creds.chmod(0o600)
    spec = CredentialFile(str(creds), max_age_s=90 * 86400)
    good = credential_file(LOCAL, spec, utc_now)
    assert good.ok is True and good.found.startswith("mode 0600")
    creds.chmod(0o644)
    loose = credential_file(LOCAL, spec, utc_now)
    assert loose.ok is False and str(creds) in loose.fix and "chmod 600" in loose.fix
    assert "s3cr3t" not in json.dumps(loose.__dict__)
    creds.chmod(0o600)
    old = credential_file(LOCAL, spec, lambda: utc_now() + timedelta(days=91))
    assert old.ok is False and "rotate" in old.fix
    gone = credential_file(LOCAL, CredentialFile(str(tmp_path / "x"), 1), utc_now)
    assert gone.ok is False and gone.found == "missing"


def test_clock_against_the_drill_host() -> None:
    assert clock(LOCAL, 5.0, utc_now).ok is True
    skewed = clock(LOCAL, 5.0, lambda: utc_now() + timedelta(minutes=9), "inv.yaml, hosts.b")
    assert skewed.ok is False and skewed.found.startswith("offset between -540")
    assert "at least 539" in skewed.fix
    assert "tolerance of 5 s (declared in inv.yaml, hosts.b)" in skewed.fix


def test_mounts() -> None:
    assert mount(LOCAL, MountSpec("/proc", writable=False)).ok is True
    r = mount(LOCAL, MountSpec("/no/such/mount"))
    assert r.ok is False and r.found == "not mounted"


def test_serving_process_port_and_loaded_files(tmp_path: Path) -> None:
    loaded = tmp_path / "pull-0001"
    loaded.mkdir()
    (loaded / "a.bin").write_bytes(b"weights")
    entry = ManifestEntry("a.bin", 7, hashlib.sha256(b"weights").hexdigest())
    manifest = Manifest("m", (entry,), "", "x")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        marker = "pytest"  # in our command line, run as `pytest` or as `python -m pytest`
        spec = Serving(marker, port, str(tmp_path))
        results = serving(LOCAL, spec, manifest)
        assert [r.ok for r in results] == [True, True, True], results
        (loaded / "a.bin").write_bytes(b"other")
        assert serving(LOCAL, spec, manifest)[2].ok is False
    closed = serving(LOCAL, Serving("no-such-process-xyz", port, None), None)
    assert [r.ok for r in closed] == [False, False]


def test_site_checks_in_testinfra_vocabulary(tmp_path: Path) -> None:
    f = tmp_path / "env"
    f.write_text("REGION=eu\n")
    f.chmod(0o640)
    file_check = SiteCheck("file", str(f), (("exists", True), ("mode", "0600"),
                                            ("contains", "REGION")))
    r = run_site_check(LOCAL, file_check)
    assert r.ok is False and "mode 0640" in r.found and "contains REGION" in r.found
    cmd = run_site_check(LOCAL, SiteCheck("command", "echo hello-site",
                                          (("exit_status", 0), ("stdout_contains", "hello"))))
    assert cmd.ok is True
    bad = run_site_check(LOCAL, SiteCheck("command", "echo secret-output; exit 3",
                                          (("exit_status", 0),)))
    assert bad.ok is False and "secret-output" not in bad.found and "exit_status 3" in bad.found
    pkg = run_site_check(LOCAL, SiteCheck("package", "bash", (("installed", True),)))
    assert pkg.ok is True
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        sock = run_site_check(LOCAL, SiteCheck("socket", f"tcp://127.0.0.1:{s.getsockname()[1]}",
                                               (("listening", True),)))
    assert sock.ok is True
