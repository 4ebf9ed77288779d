"""The host contract: what drills ask of a host's filesystem, held against the in-memory
:class:`~harness.fakes.host.FakeHost`, the real testinfra host with the ``local`` backend (no
lab), and the lab's ssh host (marker ``lab``). Each command is one the free-space check or
``node-cache-full`` runs, given as the fake knows it (harness/fakes/host.py); the real hosts run
the same text through the shell."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.fakes import host as fake
from harness.fakes.host import FakeHost
from harness.hosts.backend import Host
from harness.hosts.spec import HostSpec, SpacePath
from harness.inventory import load_inventory
from scenarios.node_cache_full import NodeCacheFull


@dataclass
class Subject:
    host: Any
    top: str
    #: writes a file as the host's own processes would (not through a drill's command)
    write: Callable[[str, bytes], None]


def _local_write(path: str, data: bytes) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)


@pytest.fixture(params=["fake", "local", pytest.param("lab-ssh", marks=pytest.mark.lab)])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    if request.param == "fake":
        h = FakeHost(HostSpec("fake-node", "local"))
        h.mkdir("/srv/cache")
        yield Subject(h, "/srv/cache", h.write)
        return
    if request.param == "local":
        top = tmp_path / "cache"
        top.mkdir()
        yield Subject(Host(HostSpec("drill-host", "local")), str(top), _local_write)
        return
    lab = request.getfixturevalue("lab")
    spec = load_inventory(lab.inventory_path).hosts["gpu-node-0"]
    # a scratch folder of its own beside the node's cache, on the host the lab's sshd serves
    top = Path(tempfile.mkdtemp(prefix="contract-", dir=lab.root))
    h = Host(spec)
    try:
        yield Subject(h, str(top), _local_write)
    finally:
        h.close()
        for p in sorted(top.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        top.rmdir()


def du(s: Subject) -> int:
    out = s.host.run(fake.DF_DU, s.top, s.top)
    assert out.rc == 0, out.stderr
    df, used = out.stdout.strip().splitlines()
    assert len(df.split()) == 6 and int(df.split()[3]) >= 0  # df -P: available is the 4th
    return int(used.split()[0])


def entries(s: Subject) -> dict[str, bool]:
    shim = SimpleNamespace(host=s.host, path=SpacePath(s.top), spec=SimpleNamespace(name="h"))
    return NodeCacheFull._entries(shim)  # type: ignore[arg-type]


def test_df_and_du_count_a_sparse_file_at_its_length(subject: Subject) -> None:
    before = du(subject)
    out = subject.host.run(fake.TRUNCATE, str(5 << 20), f"{subject.top}/stale-blob-x")
    assert out.rc == 0, out.stderr
    # the file's whole length, and at most a block more: the folder's own entry list (tmpfs
    # counts 20 bytes an entry, ext4 a block only when the folder outgrows one)
    assert 0 <= du(subject) - before - (5 << 20) <= 4096
    assert subject.host.run(fake.DF, subject.top).rc == 0


def test_listing_tells_pulls_from_loose_files(subject: Subject) -> None:
    subject.write(f"{subject.top}/pull-0001/model.safetensors", b"w" * 10)
    subject.write(f"{subject.top}/.partial-download", b"p")
    subject.write(f"{subject.top}/loose", b"l")
    assert entries(subject) == {"pull-0001": True, ".partial-download": False, "loose": False}
    missing = subject.host.run(fake.LIST, f"{subject.top}/absent")
    assert missing.rc != 0


def test_rm_removes_files_and_folders_and_a_missing_file_is_no_error(subject: Subject) -> None:
    subject.write(f"{subject.top}/pull-0001/a/b", b"x")
    subject.write(f"{subject.top}/blob", b"y")
    assert subject.host.run(fake.RM_RF, f"{subject.top}/pull-0001").rc == 0
    assert subject.host.run(fake.RM_F, f"{subject.top}/blob").rc == 0
    assert subject.host.run(fake.RM_F, f"{subject.top}/never-there").rc == 0
    assert entries(subject) == {}


def test_hash_all_lists_every_file_below_with_its_sha256(subject: Subject) -> None:
    files = {f"{subject.top}/pull-0002/w.safetensors": b"weights",
             f"{subject.top}/pull-0002/sub/config.json": b"{}", f"{subject.top}/loose": b""}
    for path, data in files.items():
        subject.write(path, data)
    out = subject.host.run(fake.HASH_ALL, subject.top)
    assert out.rc == 0, out.stderr
    found = {line.partition("  ")[2]: line.partition("  ")[0]
             for line in out.stdout.splitlines()}
    assert found == {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}


def test_a_missing_path_is_an_error_not_an_empty_answer(subject: Subject) -> None:
    gone = f"{subject.top}/absent"
    assert subject.host.run(fake.DF_DU, gone, gone).rc != 0
    assert subject.host.run(fake.HASH_ALL, gone).rc != 0


def test_the_fake_refuses_what_it_does_not_know() -> None:
    """A command the fake was not taught exits 127: a check built on it could not run."""
    h = FakeHost(HostSpec("fake-node", "local"))
    out = h.run("systemctl is-active %s", "tritonserver")
    assert out.rc == 127 and "not supported" in out.stderr
    assert h.commands == ["systemctl is-active %s"]
