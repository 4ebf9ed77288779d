"""The drill context: what a scenario and its runbook steps are given.

It holds the inventory entry for the asset, the adapters (built once, lazily, from the inventory),
the journal, and the findings so far. Scenarios never construct clients; they ask the context, so
a test or a site can hand in other adapters.

Recording results, the typed way (the reports read these fields, never string keys)::

    ctx.record_smoke(SmokeResult.golden(total=8, identical=8, endpoint=url))
    ctx.section(ReplicationSection(...))   # a TypedSection registered under its name
    ctx.service_recovered(at=instant)      # the service was back (ends the service RTO)

The older API still works: ``ctx.findings.smoke[key] = value`` and
``ctx.findings.sections[name] = {...}`` are read into their types when the evidence is built (a
section whose dict does not fit its declared type is kept and rendered generically).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.blast import Fence, Touch
from harness.errors import Inconclusive, StepFailed
from harness.hosts.backend import Host
from harness.inventory import Asset, Inventory
from harness.journal import Clock, Journal
from harness.model import (
    SERVICE_RECOVERED,
    IntegrityCheck,
    Outcome,
    Phase,
    RestorePoint,
    Scalar,
    Section,
    SmokeResult,
    StepRecord,
    TypedSection,
    iso,
    section_from_json,
)
from harness.params import ParamValues
from harness.targets.database import Database
from harness.targets.fleet import NodeHost, Orchestrator
from harness.targets.inference import InferenceEndpoint
from harness.targets.job import Job
from harness.targets.kube import KubeCluster
from harness.targets.loadbalancer import LoadBalancer
from harness.targets.protocols import (
    BackupRepo,
    DatabaseAPI,
    JobAPI,
    LoadBalancerAPI,
    NodeHostAPI,
    ObjectStore,
    OrchestratorAPI,
    RegistryAPI,
    RgwAdminAPI,
    ServingEndpoint,
)
from harness.targets.registry import MlflowRegistry
from harness.targets.restic import ResticRepo
from harness.targets.rgwadmin import RgwAdmin
from harness.targets.s3 import S3Store

Progress = Callable[[str], None]


@dataclass
class Findings:
    """What the drill found; the verdict is derived from these."""

    failures: list[str] = field(default_factory=list)
    inconclusive: list[str] = field(default_factory=list)
    restore_point: RestorePoint | None = None
    #: the smoke test's results as flat key/values (the older API; see ``smoke_result``)
    smoke: dict[str, Scalar] = field(default_factory=dict)
    reverted: bool = False
    #: scenario-specific evidence as JSON objects (the older API; see ``typed_sections``)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: sections recorded with their declared type (DrillContext.section); a name given here
    #: replaces a dict section of the same name
    typed_sections: dict[str, Section] = field(default_factory=dict)
    #: where the drill did not go as planned without missing an objective (a rejected restore
    #: point, a fallback to an older one, a slow store): each becomes a "deviation" finding
    deviations: list[str] = field(default_factory=list)

    def smoke_result(self) -> SmokeResult:
        """The smoke test's results, typed."""
        return SmokeResult.from_json(self.smoke)

    def all_sections(self) -> dict[str, Section]:
        """Every section, typed (a dict section whose shape does not fit its declared type is
        kept as a generic one)."""
        out = {name: section_from_json(name, doc) for name, doc in self.sections.items()
               if name not in self.typed_sections}
        out.update(self.typed_sections)
        return out


class Adapters:
    """One adapter per inventory target, created on first use and shared within the drill.

    Each is handed out as its kind's protocol (harness/targets/protocols.py), which the real
    adapter and its fake both satisfy, so a scenario calls only what every implementation has.
    A Kubernetes cluster and a host are handed out as their concrete adapters: neither has a
    fake to keep to a protocol (the lab-free cluster tests run the lab's Kubernetes API
    in-process; host checks drive testinfra's objects)."""

    def __init__(self, inventory: Inventory, work_dir: Path,
                 provided: Mapping[str, object] | None = None) -> None:
        """``provided`` hands in adapters by target name (in-memory fakes in unit tests, a
        site's own client); any target not in it gets the real adapter built from the
        inventory on first use."""
        self.inventory = inventory
        self.work_dir = work_dir
        unknown = (set(provided or {}) - set(inventory.targets)
                   - {f"host:{h}" for h in inventory.hosts})
        if unknown:
            raise ValueError(f"adapters handed in for unknown target(s): "
                             f"{', '.join(sorted(unknown))}")
        self._cache: dict[str, Any] = dict(provided or {})
        self.fence: Fence | None = None

    def set_fence(self, fence: Fence | None) -> None:
        """Fence every store and database adapter, made now or later, to a drill's declared
        blast radius (None lifts it)."""
        self.fence = fence
        for adapter in self._cache.values():
            if hasattr(adapter, "fence"):  # stores and databases, real or fake
                adapter.fence = fence

    def s3(self, name: str) -> ObjectStore:
        if name not in self._cache:
            self._cache[name] = S3Store(self.inventory.s3(name))
            self._cache[name].fence = self.fence
        store: ObjectStore = self._cache[name]
        return store

    def restic(self, name: str) -> BackupRepo:
        if name not in self._cache:
            self._cache[name] = ResticRepo(self.inventory.restic(name),
                                           cache_dir=self.work_dir / "restic-cache")
        repo: BackupRepo = self._cache[name]
        return repo

    def rgw_admin(self, name: str) -> RgwAdminAPI:
        if name not in self._cache:
            self._cache[name] = RgwAdmin(self.inventory.rgw_admin(name))
        admin: RgwAdminAPI = self._cache[name]
        return admin

    def job(self, name: str) -> JobAPI:
        if name not in self._cache:
            self._cache[name] = Job(self.inventory.job(name))
        job: JobAPI = self._cache[name]
        return job

    def inference(self, name: str) -> ServingEndpoint:
        if name not in self._cache:
            self._cache[name] = InferenceEndpoint(self.inventory.inference(name))
        ep: ServingEndpoint = self._cache[name]
        return ep

    def postgres(self, name: str) -> DatabaseAPI:
        if name not in self._cache:
            self._cache[name] = Database(self.inventory.postgres(name))
            self._cache[name].fence = self.fence
        db: DatabaseAPI = self._cache[name]
        return db

    def mlflow(self, name: str) -> RegistryAPI:
        if name not in self._cache:
            self._cache[name] = MlflowRegistry(self.inventory.mlflow(name))
        reg: RegistryAPI = self._cache[name]
        return reg

    def loadbalancer(self, name: str) -> LoadBalancerAPI:
        if name not in self._cache:
            t = self.inventory.loadbalancer(name)
            self._cache[name] = LoadBalancer(t.socket, t.backend, name=t.name)
        lb: LoadBalancerAPI = self._cache[name]
        return lb

    def kube(self, name: str) -> KubeCluster:
        if name not in self._cache:
            self._cache[name] = KubeCluster(self.inventory.kube(name))
        cluster: KubeCluster = self._cache[name]
        return cluster

    def host(self, name: str) -> Host:
        """A declared host (inventory ``hosts:``) through testinfra; hand one in as
        ``host:<name>``."""
        key = f"host:{name}"
        if key not in self._cache:
            self._cache[key] = Host(self.inventory.hosts[name])
        host: Host = self._cache[key]
        return host

    def node(self, name: str) -> NodeHostAPI:
        if name in self._cache:
            host: NodeHostAPI = self._cache[name]
            return host
        return NodeHost(self.inventory.node(name))

    def orchestrator(self, name: str) -> OrchestratorAPI:
        if name in self._cache:
            orch: OrchestratorAPI = self._cache[name]
            return orch
        return Orchestrator(self.inventory.orchestrator(name))


class DrillContext:
    def __init__(self, *, drill_id: str, inventory: Inventory, asset: Asset, variant: str,
                 journal: Journal, adapters: Adapters, clock: Clock, work_dir: Path,
                 progress: Progress) -> None:
        self.drill_id = drill_id
        self.inventory = inventory
        self.asset = asset
        self.variant = variant
        self.journal = journal
        self.adapters = adapters
        self.clock = clock
        self.work_dir = work_dir
        self.progress = progress
        self.findings = Findings()
        self.phase = Phase.PREFLIGHT
        #: the declared blast radius (Scenario.touches), set by the runner before preflight
        self.declared: tuple[Touch, ...] = ()
        #: the step run_step is running (for the record of where a signal came)
        self.current_step: str | None = None
        #: the scenario's parameters, resolved and validated (set by the runner)
        self.params = ParamValues()

    # -- recording ---------------------------------------------------------------------------

    def event(self, name: str, **detail: Scalar) -> None:
        self.journal.event(name, self.phase, **detail)

    def fail(self, reason: str) -> None:
        """An objective was missed: the verdict will be FAIL."""
        self.findings.failures.append(reason)
        self.journal.note("finding", verdict="FAIL", reason=reason, phase=self.phase.value)
        self.progress(f"  FAIL: {reason}")

    def inconclusive(self, reason: str) -> None:
        """A check could not run: the verdict cannot be PASS."""
        self.findings.inconclusive.append(reason)
        self.journal.note("finding", verdict="INCONCLUSIVE", reason=reason, phase=self.phase.value)
        self.progress(f"  INCONCLUSIVE: {reason}")

    def deviation(self, reason: str) -> None:
        """Something went other than planned, without missing an objective: a finding, not a
        verdict (e.g. the newest backup was corrupt and an older one was restored)."""
        self.findings.deviations.append(reason)
        self.journal.note("finding", verdict="DEVIATION", reason=reason, phase=self.phase.value)
        self.progress(f"  DEVIATION: {reason}")

    def section(self, section: TypedSection) -> None:
        """Record a typed evidence section under the name its type is registered with."""
        name = type(section).section_name
        if not name:
            raise TypeError(f"{type(section).__name__} is not registered "
                            f"(harness.model.register_section)")
        self.findings.typed_sections[name] = section

    def record_smoke(self, result: SmokeResult) -> None:
        """Record the smoke test's typed result (merged with any key/values given before)."""
        self.findings.smoke.update(result.to_json())

    def service_recovered(self, at: datetime | None = None, **detail: Scalar) -> None:
        """The service is back (for inference: the SLO holds again): this ends the service RTO,
        if the verification after it passes. ``at`` gives an instant measured after the fact
        (e.g. from load samples); it may not lie after now."""
        if at is not None:
            detail["at_utc"] = iso(at)
        self.journal.event(SERVICE_RECOVERED, self.phase, **detail)

    def integrity(self, obj: str, expected: str, actual: str | None) -> bool:
        ok = actual is not None and actual == expected
        self.journal.check(IntegrityCheck(obj, expected, actual, ok, self.phase))
        return ok

    # -- timed steps ---------------------------------------------------------------------------

    def run_step(self, name: str, fn: Callable[[], None]) -> Outcome:
        """Run one timed, journaled step. StepFailed -> FAILED; Inconclusive or any other error
        -> ERROR (the step could not do its work). Never raises except KeyboardInterrupt raised
        by the step's own code (held signals never raise here): the step is journaled as ERROR
        "interrupted" first, and ``current_step`` keeps its name so the runner can say where."""
        self.progress(f"  [{self.phase.value}] {name} ...")
        started_utc, started = self.clock.utc(), self.clock.mono()
        self.current_step = name
        self.journal.event(f"step.{name}.started", self.phase)
        message = ""
        try:
            fn()
            outcome = Outcome.OK
        except StepFailed as exc:
            outcome, message = Outcome.FAILED, str(exc)
        except Inconclusive as exc:
            outcome, message = Outcome.ERROR, str(exc)
        except KeyboardInterrupt:
            self._end_step(name, started_utc, started, Outcome.ERROR,
                           "interrupted (KeyboardInterrupt)")
            raise
        except Exception as exc:  # noqa: BLE001 - steps may come from a site's plug-ins
            outcome, message = Outcome.ERROR, f"{type(exc).__name__}: {exc}"
            self.journal.note("traceback", step=name, text=traceback.format_exc())
        self._end_step(name, started_utc, started, outcome, message)
        self.current_step = None
        return outcome

    def _end_step(self, name: str, started_utc: datetime, started: float, outcome: Outcome,
                  message: str) -> None:
        ended_utc, ended = self.clock.utc(), self.clock.mono()
        self.journal.step(StepRecord(name, self.phase, started_utc, ended_utc, ended - started,
                                     outcome, message))
        self.journal.event(f"step.{name}.{outcome.value}", self.phase)
        tail = f": {message}" if message else ""
        self.progress(f"  [{self.phase.value}] {name}: {outcome.value} "
                      f"({ended - started:.2f} s){tail}")
