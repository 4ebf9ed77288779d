"""The ``hosts:`` inventory section, the verdict mapping of host checks, and the runner's hook,
with the ``local`` backend and a scripted scenario: no lab."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path
from typing import ClassVar

import pytest

from harness.errors import InventoryError
from harness.inventory import load_inventory
from harness.lease import MemoryResolver
from harness.model import HostCheck, Objective, ObjectiveKind, Phase, SmokeResult, Verdict
from harness.runner import DrillRequest, run_drill
from harness.verdict import Recorded, host_objective, judge
from reports.junit import render_junit
from reports.render import write_evidence
from tests.test_runner import Scripted

BASE = """\
version: 1
site: unit
targets:
  store: {kind: s3, endpoint: "http://127.0.0.1:9", access_key: a, secret_key: b, drill_safe: true}
assets:
  - {id: w, tier: 1, kind: model-weights, store: store, bucket: b, prefix: p/,
     manifest: manifest.json}
objectives:
  tiers: {1: {rto_s: 60, rpo_s: 3600}}
probe: {interval_s: 0.01, detect_timeout_s: 0.2}
"""


def write(tmp_path: Path, hosts: str) -> Path:
    p = tmp_path / "inv.yaml"
    p.write_text(BASE + hosts)
    return p


GOOD = """\
hosts:
  gpu-node-1:
    backend: ssh
    ssh: {address: 10.0.0.5, user: drill, key_file: keys/drill, port: 2222,
          known_hosts: keys/known_hosts}
    targets: [store]
    assets: [w]
    paths: [{path: /var/cache/models, factor: 2, capacity_bytes: 1048576}]
    tools: {restic: "0.16"}
    credentials: [{path: /etc/backup/creds, max_age_days: 90}]
    clock: {tolerance_s: 2}
    mounts: [{path: /var/cache/models}]
    serving: [{process: tritonserver, port: 8000, loaded_dir: /var/cache/models}]
    checks:
      - {file: /etc/backup/creds, mode: "600", user: backup}
      - {command: restic version, stdout_contains: "0.16"}
  here: {backend: local}
"""


def test_hosts_section_loads(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, GOOD))
    h = inv.hosts["gpu-node-1"]
    assert h.ssh is not None and h.ssh.key_file == (tmp_path / "keys/drill").resolve()
    assert h.ssh.port == 2222 and h.targets == ("store",) and h.tools == (("restic", "0.16"),)
    assert h.credentials[0].max_age_s == 90 * 86400 and h.clock_tolerance_s == 2
    assert h.checks[0].expect == (("exists", True), ("mode", "0600"), ("user", "backup"))
    assert h.checks[1].expect == (("exit_status", 0), ("stdout_contains", "0.16"))
    assert inv.hosts["here"].backend == "local" and inv.hosts["here"].ssh is None


@pytest.mark.parametrize(("old", "new", "field", "message"), [
    ("key_file: keys/drill,", "key_file: keys/drill, password: hunter2,",
     "hosts.gpu-node-1.ssh.password", "no password"),
    ("targets: [store]", "targets: [nope]", "hosts.gpu-node-1.targets[0]", "not under targets"),
    ("backend: ssh", "backend: kubectl", "hosts.gpu-node-1.backend", "not built yet"),
    ('mode: "600"', 'mode: "rw-"', "hosts.gpu-node-1.checks[0].mode", "octal mode"),
    ("{command: restic version,", "{command: restic version, file: /x,",
     "hosts.gpu-node-1.checks[1]", "exactly one of"),
    ("max_age_days: 90", "max_age_days: -1", "hosts.gpu-node-1.credentials[0].max_age_days",
     "positive"),
    ('restic: "0.16"', "restic: latest", "hosts.gpu-node-1.tools.restic", "version"),
    ("path: /var/cache/models, factor", "path: cache, factor",
     "hosts.gpu-node-1.paths[0].path", "absolute"),
    ("clock: {tolerance_s: 2}", "clock: {tolerance: 2}", "hosts.gpu-node-1.clock.tolerance",
     "unknown field"),
])
def test_bad_hosts_name_file_line_and_field(tmp_path: Path, old: str, new: str, field: str,
                                           message: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    err = info.value
    assert err.file == path and err.field == field and message in err.message, str(err)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if new.split(",")[0].strip() in text or new.split(":")[0].strip() in text)
    assert err.line >= line - 1, str(err)


def _check(phase: Phase, ok: bool | None) -> HostCheck:
    return HostCheck("gpu-node-2", "ssh", phase, "free-space /var/cache/models",
                     ">= 28.4 GiB free", "1.9 GiB free", ok)


def test_verdict_mapping_of_host_checks() -> None:
    assert host_objective(_check(Phase.PREFLIGHT, True)).status is Verdict.PASS
    assert host_objective(_check(Phase.PREFLIGHT, False)).status is Verdict.INCONCLUSIVE
    assert host_objective(_check(Phase.VERIFY, False)).status is Verdict.FAIL
    assert host_objective(_check(Phase.VERIFY, None)).status is Verdict.INCONCLUSIVE
    o = host_objective(_check(Phase.VERIFY, False))
    assert o.kind is ObjectiveKind.HOST_CHECK
    assert o.name == "host:verify:gpu-node-2:free-space /var/cache/models"
    j = judge(Objective(1.0, 60, True), Objective(1.0, 60, True), Recorded(
        events=[], integrity=[], smoke=SmokeResult(), sections={}, reverted=True, failures=[],
        inconclusive=[], host_checks=[_check(Phase.VERIFY, False)]))
    assert j.verdict is Verdict.FAIL and any(o.message in r for r in j.reasons)


class FakeStore:
    """Only what the host hook reads: the asset's manifest."""

    def __init__(self, manifest: bytes) -> None:
        self.manifest = manifest

    def read_bytes(self, bucket: str, key: str) -> bytes | None:
        return self.manifest if key == "p/manifest.json" else None


def _manifest(size: int) -> bytes:
    return json.dumps({"format": "drillbook-manifest/1", "model": "m", "created_utc": "",
                       "files": [{"path": "a.bin", "size": size,
                                  "sha256": hashlib.sha256(b"").hexdigest()}]}).encode()


def _local_host(tmp_path: Path, cache: Path, extra: str = "") -> Path:
    return write(tmp_path, f"""\
hosts:
  node:
    backend: local
    assets: [w]
    paths: [{{path: {cache}, factor: 2, capacity_bytes: 65536}}]
{extra}""")


def _drill(path: Path, cls: type[Scripted], manifest: bytes) -> tuple[object, type[Scripted]]:
    from harness.integrity import MANIFEST_FORMAT
    inv = load_inventory(path)
    manifest = manifest.replace(b"drillbook-manifest/1", MANIFEST_FORMAT.encode())
    result = run_drill(inv, DrillRequest(cls, "only", "w", path.parent / "ev"),
                       progress=lambda m: None, lease_resolver=MemoryResolver(),
                       adapters={"store": FakeStore(manifest)})
    return result, cls


def _scripted(**attrs: object) -> type[Scripted]:
    return type("S", (Scripted,), {"calls": [], **attrs})


def test_full_cache_stops_the_drill_in_preflight_touching_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "stale").touch()
    os.truncate(cache / "stale", 60000)
    result, cls = _drill(_local_host(tmp_path, cache), _scripted(), _manifest(10000))
    ev = result.evidence  # type: ignore[attr-defined]
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert cls.calls == [], "neither the scenario's preflight nor anything after it ran"
    assert any(f"node: {cache} has" in r and "free or expand" in r for r in ev.reasons), ev.reasons
    assert [h.ok for h in ev.host_checks] == [False]
    assert ev.to_json()["host_checks"][0]["check"] == f"free-space {cache}"
    names = [o.name for o in ev.objectives]
    assert f"host:preflight:node:free-space {cache}" in names
    assert f'name="host:preflight:node:free-space {cache}"' in render_junit(ev)
    write_evidence(ev, result.directory)  # type: ignore[attr-defined]
    html = (result.directory / "report.html").read_text()  # type: ignore[attr-defined]
    assert "<h2>Host checks</h2>" in html and f"<code>free-space {cache}</code>" in html


def test_host_check_missed_after_recovery_fails(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()

    class FillsTheCache(Scripted):
        calls: ClassVar[list[str]] = []

        def verify(self) -> None:
            super().verify()
            # fills the 64 KiB budget past what 2 x 1000 B needs, whatever the folder counts
            (cache / "leftover").touch()
            os.truncate(cache / "leftover", 64000)

    result, _cls = _drill(_local_host(tmp_path, cache), FillsTheCache, _manifest(1000))
    ev = result.evidence  # type: ignore[attr-defined]
    assert ev.verdict is Verdict.FAIL, ev.reasons
    assert [(h.phase, h.ok) for h in ev.host_checks] == [(Phase.PREFLIGHT, True),
                                                         (Phase.VERIFY, False)]
    assert ev.rto.measured_s is None, "a recovery whose host check failed is not verified"
    statuses = {o.name: o.status for o in ev.objectives if o.kind is ObjectiveKind.HOST_CHECK}
    assert statuses == {f"host:preflight:node:free-space {cache}": Verdict.PASS,
                        f"host:verify:node:free-space {cache}": Verdict.FAIL}


def test_no_key_or_password_reaches_the_evidence(tmp_path: Path) -> None:
    """An ssh host that refuses the connection: the drill is INCONCLUSIVE, and neither the key
    file's path nor its contents appear in the evidence or the journal."""
    keys = tmp_path / "keys"
    keys.mkdir()
    secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n"
    (keys / "drill_ed25519").write_text(secret)
    (keys / "drill_ed25519").chmod(0o600)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write(tmp_path, f"""\
hosts:
  backup-host:
    backend: ssh
    ssh: {{address: 127.0.0.1, user: drill, key_file: keys/drill_ed25519, port: {port}}}
    assets: [w]
    clock: {{tolerance_s: 2}}
""")
    result, _ = _drill(path, _scripted(), _manifest(10))
    ev = result.evidence  # type: ignore[attr-defined]
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert [h.ok for h in ev.host_checks] == [None]
    written = json.dumps(ev.to_json()) + (result.directory / "journal.jsonl").read_text()  # type: ignore[attr-defined]
    assert "backup-host" in written
    for leak in ("drill_ed25519", "c2VjcmV0LWtleS1tYXRlcmlhbA", "PRIVATE KEY"):
        assert leak not in written


def test_the_lab_inventory_writer_declares_loadable_hosts(tmp_path: Path) -> None:
    """The hosts lab/sshd.py writes load, link the adapter drill to both its hosts and carry
    no key material (only the key file's path)."""
    from types import SimpleNamespace

    from lab import sshd
    from tests.inventory_samples import dump, lab_like

    doc = lab_like(tmp_path)
    fake_lab = SimpleNamespace(root=tmp_path, state=SimpleNamespace(
        model_size=4 << 20, rgw_port=7480, node_port=8081))
    (tmp_path / "sshd").mkdir()
    (tmp_path / "sshd" / "port").write_text("2222")
    sshd.SshServer().contribute(fake_lab, doc)  # type: ignore[arg-type]
    path = tmp_path / "inv.yaml"
    path.write_bytes(dump(doc))
    hosts_text = path.read_text().split("\nhosts:\n", 1)[1]
    assert "&id" not in hosts_text and "*id" not in hosts_text and "PRIVATE" not in hosts_text
    inv = load_inventory(path)
    assert {"backup-host", "gpu-node-0"} <= set(inv.hosts)
    assert all(h.backend == "ssh" and h.ssh is not None and h.ssh.port == 2222
               for h in inv.hosts.values())
    from harness.hosts.drill import linked_hosts
    adapter = next(a for a in inv.assets.values() if a.kind == "lora-adapter")
    assert {h.name for h in linked_hosts(inv, adapter)} == {"backup-host", "gpu-node-0"}
