"""Free space of a store, without a cluster: a stand-in ``ceph`` command on PATH answers with
what a Ceph cluster with and without ceph-mgr prints."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.capacity import admin_for_store, require_room, store_free_bytes
from harness.errors import Inconclusive
from harness.inventory import Inventory, load_inventory

GiB = 1024**3

INVENTORY = """\
version: 1
site: test-site
targets:
  store:
    kind: s3
    endpoint: http://127.0.0.1:8080
    access_key: AK
    secret_key: SK
    drill_safe: true
  other-store:
    kind: s3
    endpoint: http://127.0.0.1:9090
    access_key: AK
    secret_key: SK
    drill_safe: true
  rgw-admin:
    kind: rgw-admin
    conf: {conf}
    drill_safe: true
assets:
  - id: weights
    tier: 1
    kind: model-weights
    store: store
    bucket: models
    prefix: m/
objectives:
  tiers:
    1: {{rto_s: 300, rpo_s: 86400}}
"""

NO_MGR_DF = {"stats": {"total_bytes": 0, "total_avail_bytes": 0}, "pools": []}
OSD_DUMP = {"full_ratio": 0.95, "osds": [{"osd": 0, "up": 1, "in": 1},
                                         {"osd": 1, "up": 0, "in": 1}],
            "pools": [{"pool_name": "default.rgw.buckets.data", "size": 1}]}
PERF = {"osd": {"stat_bytes": 20 * GiB, "stat_bytes_used": 4 * GiB, "stat_bytes_avail": 16 * GiB}}
MGR_DF = {"stats": {"total_bytes": 100 * GiB},
          "pools": [{"name": "default.rgw.buckets.data", "stats": {"max_avail": 30 * GiB}}]}


def fake_ceph(tmp_path: Path, df: dict[str, object]) -> Path:
    """A ``ceph`` that answers df, osd dump and tell osd.0 perf dump (and logs its calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    answers = {"df": df, "dump": OSD_DUMP, "perf": PERF}
    for name, doc in answers.items():
        (bin_dir / f"{name}.json").write_text(json.dumps(doc))
    script = bin_dir / "ceph"
    script.write_text(f"""#!/bin/sh
echo "$@" >> {bin_dir}/calls
case "$*" in
  *" df "*) cat {bin_dir}/df.json ;;
  *"osd dump"*) cat {bin_dir}/dump.json ;;
  *"tell osd.0 perf dump"*) cat {bin_dir}/perf.json ;;
  *) echo "unexpected: $*" >&2; exit 22 ;;
esac
""")
    script.chmod(0o755)
    return bin_dir


def inventory(tmp_path: Path, port: int = 8080) -> Inventory:
    conf = tmp_path / "ceph.conf"
    conf.write_text(f"[client.rgw.gw]\nrgw_frontends = beast endpoint=127.0.0.1:{port}\n")
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY.format(conf=conf))
    return load_inventory(path)


def test_without_ceph_mgr_the_osds_own_counters_give_the_room_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = fake_ceph(tmp_path, NO_MGR_DF)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    space = store_free_bytes(inventory(tmp_path), "store")
    # up to the full ratio: 0.95 x 20 GiB - 4 GiB; the OSD that is down is not asked
    assert space.free_bytes == int(20 * GiB * 0.95) - 4 * GiB
    assert space.total_bytes == 20 * GiB and "full_ratio 0.95" in space.source
    assert "osd.1" not in (bin_dir / "calls").read_text()


def test_with_ceph_mgr_the_data_pools_max_avail_is_used(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = fake_ceph(tmp_path, MGR_DF)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    space = store_free_bytes(inventory(tmp_path), "store")
    assert (space.free_bytes, space.source) == (30 * GiB, "ceph df (data pool)")


def test_a_store_no_admin_target_serves_is_not_checked(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRILLBOOK_STORE_CAPACITY_BYTES", raising=False)
    inv = inventory(tmp_path)
    space = store_free_bytes(inv, "other-store")  # the gateway in ceph.conf is on 8080
    assert space.free_bytes is None and space.source.startswith("unknown")
    assert require_room(inv, "other-store", 10**15, "anything") == space  # not refused


def test_require_room_refuses_what_does_not_fit_with_the_reserve(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = fake_ceph(tmp_path, MGR_DF)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DRILLBOOK_STORE_RESERVE_BYTES", str(2 * GiB))
    inv = inventory(tmp_path)
    assert require_room(inv, "store", 28 * GiB, "a safety copy").free_bytes == 30 * GiB
    with pytest.raises(Inconclusive, match="lacks room for the safety copy") as refused:
        require_room(inv, "store", 28 * GiB + 1, "a safety copy")
    assert "drillbook gc" in str(refused.value)  # says how to make room


def test_the_admin_target_of_a_store_is_the_one_whose_gateway_serves_it(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    admin = admin_for_store(inv, "store")
    assert admin is not None and admin.name == "rgw-admin"
    assert admin_for_store(inv, "other-store") is None  # port 9090: another gateway
