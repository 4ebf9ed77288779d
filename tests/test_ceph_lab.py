"""End-to-end test of lab/ceph.py: a real single-node Ceph cluster with a RADOS Gateway."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from lab.ceph import CephCluster, CephError

# No skip when Ceph is missing: `make test` installs it, and a lab test that did not run must
# not look like one that passed.
pytestmark = pytest.mark.lab


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[CephCluster]:
    mon_port, rgw_port = _free_ports(2)
    c = CephCluster(
        tmp_path / "ceph", mon_port=mon_port, rgw_port=rgw_port, osd_size_bytes=4 * 1024**3
    )
    try:
        yield c
    finally:
        c.destroy()
        assert all(not s.running for s in c.status())


def _s3(c: CephCluster, access: str, secret: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=c.endpoint,
        region_name="default",
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=3,
            read_timeout=30,
        ),
    )


def _pids(c: CephCluster) -> dict[str, int]:
    return {s.name: s.pid for s in c.status() if s.pid is not None}


def test_ceph_lab_lifecycle(
    cluster: CephCluster, record_property: Callable[[str, object], None]
) -> None:
    timings: dict[str, float] = {}
    messages: list[str] = []

    t0 = time.monotonic()
    cluster.up(messages.append)
    timings["cold_up_s"] = time.monotonic() - t0
    assert any("starting mon" in m for m in messages)
    assert cluster.conf_path == cluster.root / "ceph.conf"
    assert cluster.conf_path.is_file()
    states = {s.name: s for s in cluster.status()}
    assert set(states) == {"mon", "osd", "rgw"}
    assert all(s.running and s.pid for s in states.values()), states
    for name in ("mon.a", "osd.0", "client.rgw.gw"):
        assert (cluster.root / "run" / f"{name}.pid").is_file()
        assert (cluster.root / "log" / f"{name}.log").is_file()

    access, secret = cluster.ensure_user("drill", "Drill user")
    assert cluster.ensure_user("drill", "Drill user") == (access, secret)
    with pytest.raises(CephError):
        cluster.admin("user", "info", "--uid=nobody-such")

    s3 = _s3(cluster, access, secret)
    s3.create_bucket(Bucket="models")
    s3.put_bucket_versioning(Bucket="models", VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket="models", Key="a/w.bin", Body=b"one")["VersionId"]
    s3.put_object(Bucket="models", Key="a/w.bin", Body=b"two")
    assert s3.get_object(Bucket="models", Key="a/w.bin")["Body"].read() == b"two"
    old = s3.get_object(Bucket="models", Key="a/w.bin", VersionId=v1)
    assert old["Body"].read() == b"one"

    # Idempotent: a second up() finds everything running and changes nothing.
    before = _pids(cluster)
    t0 = time.monotonic()
    cluster.up()
    timings["warm_up_s"] = time.monotonic() - t0
    assert _pids(cluster) == before
    assert timings["warm_up_s"] < 5

    # kill -9 of the gateway and the OSD: up() restarts only those two.
    os.kill(before["rgw"], signal.SIGKILL)
    os.kill(before["osd"], signal.SIGKILL)
    t0 = time.monotonic()
    cluster.up()
    timings["restart_after_kill_s"] = time.monotonic() - t0
    after = _pids(cluster)
    assert after["mon"] == before["mon"]
    assert after.keys() == before.keys()
    assert after["osd"] != before["osd"]
    assert after["rgw"] != before["rgw"]
    assert s3.get_object(Bucket="models", Key="a/w.bin")["Body"].read() == b"two"

    # Only the gateway: S3 goes away and comes back.
    cluster.stop_rgw()
    rgw = {s.name: s for s in cluster.status()}["rgw"]
    assert not rgw.running
    with pytest.raises(EndpointConnectionError):
        s3.list_buckets()
    cluster.stop_rgw()  # idempotent
    t0 = time.monotonic()
    cluster.start_rgw()
    timings["start_rgw_s"] = time.monotonic() - t0
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["models"]

    # Full stop, then up() from the directory alone (as after a reboot).
    cluster.down()
    assert all(not s.running for s in cluster.status())
    cluster.down()  # idempotent
    t0 = time.monotonic()
    cluster.up()
    timings["up_from_stopped_dir_s"] = time.monotonic() - t0
    assert s3.get_object(Bucket="models", Key="a/w.bin")["Body"].read() == b"two"

    for key, value in timings.items():
        record_property(key, round(value, 2))
    print("\nceph lab timings: " + ", ".join(f"{k}={v:.2f}" for k, v in timings.items()))

    root = cluster.root
    cluster.destroy()
    assert not root.exists()
    cluster.destroy()  # idempotent
