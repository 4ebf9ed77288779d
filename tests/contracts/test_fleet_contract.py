"""The serving-fleet contract: the same assertions against the in-memory fleet (lab-free) and the
lab's HAProxy, fleet controller and node processes (marked ``lab``): the balancer's view and
admin states, the orchestrator's placement and each replica's own endpoint, the nodes' states."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from harness.fakes.fleet import FakeFleet
from harness.journal import Clock
from harness.targets.protocols import LoadBalancerAPI, NodeHostAPI, OrchestratorAPI

NODES = ["gpu-node-1", "gpu-node-2", "gpu-node-3"]


@dataclass
class Fleet:
    lb: LoadBalancerAPI
    orchestrator: OrchestratorAPI
    nodes: dict[str, NodeHostAPI]
    model: str
    inputs: list[list[float]]


def _fake() -> Fleet:
    fleet = FakeFleet(Clock(), nodes=NODES, primary=lambda rows: [[sum(r)] for r in rows],
                      fallback=lambda rows: [[0.0] for _ in rows], files={"w": "0" * 64})
    return Fleet(fleet.balancer(), fleet.orchestrator(), {n: fleet.node(n) for n in NODES},
                 "lab-mlp", [[0.5, 1.0]])


def _real(request: pytest.FixtureRequest) -> Fleet:
    from harness.inventory import load_inventory
    from harness.targets.fleet import NodeHost, Orchestrator
    from harness.targets.loadbalancer import LoadBalancer
    inv = load_inventory(request.getfixturevalue("lab").inventory_path)
    asset = inv.assets["lab-mlp-service"]
    assert asset.golden is not None and asset.balancer and asset.orchestrator
    lb_t = inv.loadbalancer(asset.balancer)
    return Fleet(LoadBalancer(lb_t.socket, lb_t.backend), Orchestrator(
        inv.orchestrator(asset.orchestrator)), {n: NodeHost(inv.node(n)) for n in asset.nodes},
        inv.inference(str(asset.served_by)).model, json.loads(asset.golden.read_text())["inputs"])


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.lab)])
def fleet(request: pytest.FixtureRequest) -> Fleet:
    return _fake() if request.param == "fake" else _real(request)


def test_at_rest_the_fleet_is_settled_and_every_server_up(fleet: Fleet) -> None:
    view = fleet.orchestrator.view()
    assert view.settled and view.nodes and all(view.nodes.values())
    servers = fleet.lb.servers()
    assert set(view.replicas) <= set(servers)
    assert all(s.up for s in servers.values())
    assert any(s.backup for s in servers.values())
    for name, r in view.replicas.items():
        assert not servers[name].backup and servers[name].port == r.port
    assert {n: h.state() for n, h in fleet.nodes.items()} == {n: "running" for n in fleet.nodes}


def test_each_replica_answers_on_its_own_endpoint(fleet: Fleet) -> None:
    for r in fleet.orchestrator.view().replicas.values():
        ep = fleet.orchestrator.endpoint(r, fleet.model)
        assert ep.readiness().ready
        files = ep.node_state()["files"]
        assert files and all(isinstance(f["path"], str) and len(f["sha256"]) == 64
                             for f in files)
        assert len(ep.infer(fleet.inputs)) == len(fleet.inputs)


def test_maint_takes_a_server_out_and_ready_puts_it_back(fleet: Fleet) -> None:
    name = min(fleet.orchestrator.view().replicas)
    fleet.lb.set_state(name, "maint")
    try:
        assert fleet.lb.servers()[name].status == "MAINT"
        assert not fleet.lb.servers()[name].up
    finally:
        fleet.lb.set_state(name, "ready")
    assert fleet.lb.wait_for(name, "UP", 30).up


def test_bad_arguments_are_refused(fleet: Fleet) -> None:
    name = min(fleet.orchestrator.view().replicas)
    with pytest.raises(ValueError):
        fleet.lb.set_state(name, "offline")
    with pytest.raises(ValueError):
        fleet.lb.wait_for(name, "MAINT", 1)
