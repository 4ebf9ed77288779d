"""The fleet's parts that need no lab: the HAProxy adapter's error translation, inventory
validation of the fleet target kinds, and the node adapter's refusal to signal strangers."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from harness.errors import GuardRefused, InventoryError, TargetUnreachable
from harness.inventory import NodeTarget, load_inventory
from harness.targets.fleet import NodeHost
from harness.targets.loadbalancer import CommandRejected, LoadBalancer


def fake_haproxy(path: Path, answer: str) -> threading.Thread:
    """One-shot unix-socket server answering like HAProxy's runtime API."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        conn.recv(4096)
        conn.sendall(answer.encode())
        conn.close()
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_missing_socket_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(TargetUnreachable, match="runtime API"):
        LoadBalancer(tmp_path / "nope.sock", "inference").servers()


def test_rejected_command_is_translated(tmp_path: Path) -> None:
    sock = tmp_path / "h.sock"
    fake_haproxy(sock, "No such server.\n\n")
    with pytest.raises(CommandRejected, match="No such server"):
        LoadBalancer(sock, "inference").set_state("ghost", "maint")


def test_show_stat_is_parsed(tmp_path: Path) -> None:
    sock = tmp_path / "h.sock"
    fake_haproxy(sock, "# pxname,svname,scur,stot,status,bck,check_status,lastchg,addr,\n"
                       "inference,FRONTEND,0,0,OPEN,,,,,\n"
                       "inference,replica-1,2,40,UP,0,L7OK,5,127.0.0.1:4000,\n"
                       "inference,cpu-1,0,3,DOWN,1,L4CON,1,127.0.0.1:4001,\n"
                       "inference,BACKEND,0,0,UP,0,,,,\n\n")
    servers = LoadBalancer(sock, "inference").servers()
    assert set(servers) == {"replica-1", "cpu-1"}
    assert servers["replica-1"].up and servers["replica-1"].port == 4000
    assert servers["cpu-1"].down and servers["cpu-1"].backup


def test_bad_state_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LoadBalancer(tmp_path / "h.sock", "b").set_state("s", "off")


def _inventory(tmp_path: Path, node: dict) -> Path:
    golden = tmp_path / "golden.json"
    golden.write_text('{"inputs": [], "outputs": []}')
    doc = {
        "version": 1, "site": "t",
        "targets": {
            "store": {"kind": "s3", "endpoint": "http://127.0.0.1:1", "access_key": "a",
                      "secret_key": "b", "drill_safe": True},
            "fe": {"kind": "inference", "url": "http://127.0.0.1:2", "model": "m"},
            "lb": {"kind": "loadbalancer", "socket": "/tmp/x.sock", "backend": "inference",
                   "drill_safe": True},
            "n1": node,
        },
        "assets": [{"id": "svc", "tier": 1, "kind": "inference-service", "store": "store",
                    "bucket": "b", "prefix": "m/", "served_by": "fe", "balancer": "lb",
                    "nodes": ["n1"], "golden": "golden.json"}],
        "objectives": {"tiers": {1: {"rto_s": 60, "rpo_s": 60}}},
    }
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_fleet_inventory_validates(tmp_path: Path) -> None:
    inv = load_inventory(_inventory(tmp_path, {"kind": "node", "pidfile": "/tmp/n1.pid",
                                               "power_on": ["true"], "drill_safe": True}))
    asset = inv.assets["svc"]
    assert asset.kind == "inference-service" and asset.nodes == ("n1",)
    assert inv.node("n1").power_on == ("true",)
    assert inv.loadbalancer("lb").backend == "inference"


def test_fleet_inventory_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"targets\.n1\.power_on"):
        load_inventory(_inventory(tmp_path, {"kind": "node", "pidfile": "/tmp/n1.pid",
                                             "power_on": "reboot"}))
    with pytest.raises(InventoryError, match=r"assets\[0\]\.nodes\[0\]"):
        load_inventory(_inventory(tmp_path, {"kind": "inference", "url": "http://x",
                                             "model": "m"}))


def test_node_that_does_not_lead_its_group_is_never_signalled(tmp_path: Path) -> None:
    # a child in our process group: alive, but not the leader of its group
    child = subprocess.Popen(["sleep", "30"])
    try:
        pidfile = tmp_path / "n.pid"
        pidfile.write_text(str(child.pid))
        host = NodeHost(NodeTarget("n", pidfile, (), True))
        with pytest.raises(GuardRefused):
            host.freeze()
        assert host.state() == "running"
    finally:
        child.kill()
        child.wait()


def test_node_with_no_process_is_off(tmp_path: Path) -> None:
    host = NodeHost(NodeTarget("n", tmp_path / "missing.pid", (), True))
    assert host.state() == "off"
    with pytest.raises(TargetUnreachable):
        host.crash()
