"""Scenario ``gpu-node-loss``: one GPU node of an inference fleet is lost under real traffic.

Variants:
  crash  the node's process group is killed: its replica's port refuses connections.
  hang   the node is frozen with SIGSTOP: connections are accepted by the kernel and never
         answered, so only health-check time-outs reveal it.

Recovery (the runbook, as an operator would run it): take the lost replica's HAProxy server out
of rotation (``maint``), wait for the orchestrator to reschedule the replica onto a healthy node
(a new process that pulls the weights from the store, verifies every SHA-256, loads and warms
up), check the new replica's files against the store's manifest and its golden outputs, then put
the server back in rotation (``ready``) and wait until HAProxy's checks see it UP.

Load runs through the whole drill (harness/runbook/fleet_load.py): a baseline sample before the
fault, continuous load from before the fault until the service is back, and an acceptance run
afterwards that is a gate (SLO missed: FAIL). The inference RTO is the time from injection until
the SLO held for its sustained window. Revert thaws or powers on what the drill stopped and waits
until every replica is back on its home node and every server is UP.

Blast radius: one node (its process group) of the fleet behind one load balancer. The steps are
harness/runbook/fleet.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from harness.blast import Touch
from harness.errors import Inconclusive
from harness.golden import GoldenPair as Golden
from harness.runbook import fleet, fleet_load
from harness.scenario import RunbookStep, Scenario

if TYPE_CHECKING:
    from harness.context import DrillContext


@dataclass
class NodeLossState(fleet.FleetState):
    #: the node this drill breaks (its replicas are ``replicas``)
    victim: str = ""


class GpuNodeLoss(Scenario):
    name: ClassVar[str] = "gpu-node-loss"
    #: the Kubernetes implementation of this name is scenarios/kube_node_loss.py
    platform: ClassVar[str] = "process-fleet"
    summary: ClassVar[str] = ("lose one GPU node under load (crash or hang); the replica is "
                              "rescheduled and traffic switched back")
    variants: ClassVar[tuple[str, ...]] = ("crash", "hang")
    asset_kinds: ClassVar[tuple[str, ...]] = ("inference-service",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2, 3)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = "one node (its process group) of the serving fleet"

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self.state = NodeLossState()

    def touches(self) -> list[Touch]:
        return fleet.fleet_touches(self.ctx)

    def preflight(self) -> None:
        s = self.state
        fleet.require_fleet(self.ctx, s, Golden.load)
        view = fleet.orchestrator(self.ctx).view()
        for name in self.ctx.asset.nodes:
            if view.on(name) and fleet.node(self.ctx, name).state() == "running":
                s.victim = name
                s.replicas = [r.name for r in view.on(name)]
                break
        else:
            raise Inconclusive("no running node hosts a replica: nothing to lose")
        self.ctx.event("victim.chosen", node=s.victim, replicas=",".join(s.replicas))

    def baseline(self) -> None:
        fleet_load.baseline_service(self.ctx, self.state, len(self.runbook()))

    def inject(self) -> None:
        s = self.state
        host = fleet.node(self.ctx, s.victim)
        if self.ctx.variant == "crash":
            host.crash()
            s.broken[s.victim] = "crash"
            host.wait_off(5)
        else:
            host.freeze()
            s.broken[s.victim] = "hang"
        self.ctx.event("fault.node", node=s.victim, variant=self.ctx.variant)

    def detect(self) -> bool:
        return fleet.all_down(self.ctx, self.state.replicas)

    def runbook(self) -> list[RunbookStep]:
        ctx, s = self.ctx, self.state
        return [
            fleet.take_out_of_rotation(ctx, s, "take-out-of-rotation",
                                       "maint on the lost replica's server"),
            fleet.await_reschedule(ctx, s, "the orchestrator runs the replica on a healthy node",
                                   avoid=lambda: {s.victim}, announce=True),
            fleet.smoke_test_replicas(ctx, s, "smoke-test-replica",
                                      "golden outputs from the new replica"),
            fleet.return_to_rotation(ctx, s, "return-to-rotation",
                                     "ready on the server; HAProxy sees it UP"),
        ]

    def verify(self) -> None:
        fleet_load.verify_service(self.ctx, self.state)

    def revert(self) -> None:
        fleet.revert_fleet(self.ctx, self.state)
