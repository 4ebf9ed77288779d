"""Scenario ``replication-break``: the job that copies Tier 1 assets to the secondary site stops.

Nothing fails on the primary site, so the break is silent until replication lag is measured.
While the job is down, the drill writes a small canary object into the asset's replicated prefix
every second (the synthetic writes a replication monitor makes), so the data at risk is counted,
not estimated. The monitor also records the lag curve from injection until the replica has caught
up (both on the drill's clock, at every probe and wait):
the age of the last successful replication run (the RPO the secondary site offers at that instant)
and the canary writes not yet on the replica.

Detection: the last successful run is older than twice the job's period plus 2 s. The runbook
reads the job's state, restarts it, waits for it to catch up (every canary and every object of the
asset on the replica), and verifies the asset's objects on the replica hash to the primary's.
RPO: injection time minus the start of the last replication run before it (that run's state is
what the secondary site held). Revert: the job running, the canaries removed from both sites.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from harness.blast import Touch, TouchKind
from harness.errors import GuardRefused, Inconclusive, StepFailed
from harness.inventory import Asset, Inventory, JobTarget
from harness.model import RestorePoint, iso
from harness.runbook.jobs import has_job, record_loss, replication_job_for
from harness.runbook.timeline import injected_at
from harness.scenario import RunbookStep, Scenario
from harness.targets.job import JobRun
from harness.targets.protocols import JobAPI, ObjectStore

if TYPE_CHECKING:
    from harness.context import DrillContext

CANARY_EVERY_S = 1.0
SAMPLE_EVERY_S = 0.5


@dataclass
class ReplicationState:
    target: JobTarget | None = None
    #: the last successful replication run before the fault: what the secondary site held
    last_ok: JobRun | None = None
    #: canary objects written while the job was down, with when each was written
    canaries: list[tuple[str, datetime]] = field(default_factory=list)
    #: the lag curve: one row per sample from injection until the replica caught up
    samples: list[dict[str, Any]] = field(default_factory=list)
    restarted_at: datetime | None = None
    #: canaries are written from inject until the job is restarted
    writing: bool = False
    last_canary_mono: float | None = None
    last_sample_mono: float | None = None

    @property
    def job_target(self) -> JobTarget:
        if self.target is None:
            raise Inconclusive("the replication job was not resolved (preflight did not run)")
        return self.target


class ReplicationBreak(Scenario):
    name: ClassVar[str] = "replication-break"
    summary: ClassVar[str] = "stop replication to the secondary site; measure lag, catch up"
    variants: ClassVar[tuple[str, ...]] = ("stopped",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights", "lora-adapter", "dataset")
    tiers: ClassVar[tuple[int, ...]] = (1,)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = ("the replication job (stopped) and canary objects under the "
                                   "asset's prefix")

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self.state = ReplicationState()

    @classmethod
    def applies_to(cls, inventory: Inventory, asset: Asset) -> bool:
        return super().applies_to(inventory, asset) and has_job(inventory, "replication", asset)

    @property
    def job_target(self) -> JobTarget:
        return self.state.job_target

    @property
    def job(self) -> JobAPI:
        return self.ctx.adapters.job(self.job_target.name)

    @property
    def primary(self) -> ObjectStore:
        return self.ctx.adapters.s3(self.ctx.asset.store)

    @property
    def replica(self) -> ObjectStore:
        assert self.job_target.replica_store is not None
        return self.ctx.adapters.s3(self.job_target.replica_store)

    @property
    def replica_bucket(self) -> str:
        assert self.job_target.replica_bucket is not None
        return self.job_target.replica_bucket

    def replica_key(self, key: str) -> str:
        return f"{self.ctx.asset.bucket}/{key}"

    @property
    def canary_prefix(self) -> str:
        return f"{self.ctx.asset.prefix}.drill-canary/{self.ctx.drill_id}/"

    def touches(self) -> list[Touch]:
        """The replication job (stopped, restarted) and the asset's prefix, where canaries are
        written (leased so that no other drill changes what the lag is measured on)."""
        job = replication_job_for(self.ctx)
        a = self.ctx.asset
        return [Touch(job.name, TouchKind.JOB, job.name), Touch.s3(a.store, a.bucket, a.prefix)]

    def scratch_touches(self) -> list[Touch]:
        """This drill's canaries as the replication job copies them to the replica site; revert
        removes their history there."""
        job = replication_job_for(self.ctx)
        if job.replica_store is None or job.replica_bucket is None:
            return []
        return [Touch.s3(job.replica_store, job.replica_bucket,
                         self.replica_key(self.canary_prefix))]

    def preflight(self) -> None:
        self.state.target = replication_job_for(self.ctx)
        if not self.job_target.drill_safe:
            raise GuardRefused(f"job {self.job_target.name} is not drill_safe")
        last = self.job.last_success()
        if last is None:
            raise Inconclusive(f"the replication job {self.job_target.name} has never succeeded")
        age = (self.ctx.clock.utc() - last.ended).total_seconds()
        if age > 2 * self.job_target.period_s + 30:
            raise Inconclusive(f"replication is already behind ({age:.0f} s since its last "
                               "successful run): nothing to compare with")
        self.replica.ping()

    def baseline(self) -> None:
        bad = self._out_of_sync()
        if bad:
            raise Inconclusive(f"the replica is not in sync before the fault ({len(bad)} "
                               f"objects differ, first {bad[0]})")
        self.ctx.event("baseline.replica-in-sync", objects=len(self._asset_keys()))

    def _asset_keys(self) -> list[str]:
        a = self.ctx.asset
        return [k for k in self.primary.list_keys(a.bucket, a.prefix)
                if not k.startswith(f"{a.prefix}.drill-canary/")]

    def _out_of_sync(self) -> list[str]:
        a = self.ctx.asset
        keys = self._asset_keys()
        mine = self.primary.hash_objects(a.bucket, [(k, None) for k in keys])
        theirs = self.replica.hash_objects(self.replica_bucket,
                                           [(self.replica_key(k), None) for k in keys])
        return [k for k in keys if theirs[self.replica_key(k)][0] != mine[k][0]]

    # -- inject: stop the job, then write and watch ---------------------------------------------

    def inject(self) -> None:
        last = self.job.last_success()
        assert last is not None
        s = self.state
        s.last_ok = last
        self.job.stop()
        self.ctx.event("fault.replication.stopped", job=self.job_target.name,
                       last_ok_utc=iso(last.ended))
        s.writing = True
        self.monitor()

    def monitor(self) -> None:
        """The replication monitor's tick, on the drill's clock: a canary write every
        CANARY_EVERY_S while the job is down, a lag sample every SAMPLE_EVERY_S. Called from
        inject, every detection probe, the runbook's waits and verify, so the curve covers the
        whole break whatever clock the drill runs on."""
        s, now = self.state, self.ctx.clock.mono()
        if s.writing and (s.last_canary_mono is None or
                          now - s.last_canary_mono >= CANARY_EVERY_S - 1e-9):
            self._write_canary(len(s.canaries))
            s.last_canary_mono = now
        if s.last_sample_mono is None or now - s.last_sample_mono >= SAMPLE_EVERY_S - 1e-9:
            self._take_sample()
            s.last_sample_mono = now

    def _write_canary(self, n: int) -> None:
        a = self.ctx.asset
        key = f"{self.canary_prefix}{n:05d}"
        when = self.ctx.clock.utc()
        self.primary.put_bytes(a.bucket, key, f"{self.ctx.drill_id} {n} {iso(when)}".encode())
        self.state.canaries.append((key, when))

    def _take_sample(self) -> None:
        t0 = injected_at(self.ctx)
        now = self.ctx.clock.utc()
        last = self.job.last_success()
        there = set(self.replica.list_keys(self.replica_bucket,
                                           self.replica_key(self.canary_prefix)))
        pending = [(k, w) for k, w in list(self.state.canaries) if self.replica_key(k) not in there]
        self.state.samples.append({
            "t_s": round((now - t0).total_seconds(), 3),
            "last_sync_age_s": None if last is None else
            round((now - last.started).total_seconds(), 3),
            "unreplicated_writes": len(pending),
            "oldest_unreplicated_s": round((now - pending[0][1]).total_seconds(), 3)
            if pending else 0.0,
        })

    def detect(self) -> bool:
        self.monitor()
        last = self.job.last_success()
        if last is None:
            return False
        age = (self.ctx.clock.utc() - last.ended).total_seconds()
        if age > 2 * self.job_target.period_s + 2:
            self.ctx.event("replication.lag.alert", last_ok_age_s=round(age, 3))
            return True
        return False

    # -- runbook ------------------------------------------------------------------------------

    def runbook(self) -> list[RunbookStep]:
        return [
            RunbookStep("diagnose", self.diagnose, "the job's state and last success"),
            RunbookStep("restart-replication", self.restart, "start the job again"),
            RunbookStep("catch-up", self.catch_up, "every write since the break on the replica"),
            RunbookStep("verify-replica", self.verify_replica, "the asset's objects hash alike"),
        ]

    def diagnose(self) -> None:
        last_ok = self.state.last_ok
        assert last_ok is not None  # read by inject
        runs = self.job.runs_since(injected_at(self.ctx))
        point = RestorePoint("replica-sync", f"{self.job_target.name}@{iso(last_ok.started)}",
                             last_ok.started,
                             f"s3://{self.replica_bucket}/{self.replica_key(self.ctx.asset.prefix)}")
        self.ctx.findings.restore_point = point
        self.ctx.event("replication.diagnosed", runs_since_fault=len(runs),
                       last_ok_utc=iso(last_ok.ended))

    def restart(self) -> None:
        self.monitor()
        self.state.writing = False  # the catch-up target is fixed from here on
        self.state.restarted_at = self.ctx.clock.utc()
        self.job.start()

    def catch_up(self) -> None:
        assert self.state.restarted_at is not None
        limit = max(3 * self.job_target.period_s + 5, 10.0)
        deadline = self.ctx.clock.mono() + limit
        while self.ctx.clock.mono() < deadline:
            self.monitor()
            ok = [r for r in self.job.runs_since(self.state.restarted_at) if r.ok]
            if ok:
                there = set(self.replica.list_keys(self.replica_bucket,
                                                   self.replica_key(self.canary_prefix)))
                missing = [k for k, _ in self.state.canaries if self.replica_key(k) not in there]
                if not missing:
                    self.ctx.event("replication.caught-up", canaries=len(self.state.canaries),
                                   run_utc=iso(ok[0].ended))
                    return
            self.ctx.clock.sleep(0.2)
        raise StepFailed(f"replication has not caught up within {limit:.0f} s")

    def verify_replica(self) -> None:
        bad = self._out_of_sync()
        if bad:
            raise StepFailed(f"{len(bad)} objects differ on the replica, first {bad[0]}")

    # -- verify, evidence, revert ---------------------------------------------------------------

    def verify(self) -> None:
        # canaries stop at the restart, or here if the runbook never got there; the last sample
        # may predate the catch-up: end the curve with the state now
        self.state.writing = False
        self._take_sample()
        a = self.ctx.asset
        keys = self._asset_keys()
        mine = self.primary.hash_objects(a.bucket, [(k, None) for k in keys])
        theirs = self.replica.hash_objects(self.replica_bucket,
                                           [(self.replica_key(k), None) for k in keys])
        for k in keys:
            self.ctx.integrity(f"replica:{k}", str(mine[k][0]), theirs[self.replica_key(k)][0])
        if any(mine[k][0] != theirs[self.replica_key(k)][0] for k in keys):
            self.ctx.fail("the replica differs from the primary after catch-up")
        point = self.ctx.findings.restore_point
        if point is not None:
            record_loss(self.ctx, point, [(k, w) for k, w in self.state.canaries],
                        what="canary writes made while replication was down, which the "
                             "secondary site would not have had")
        worst = max((s["unreplicated_writes"] for s in self.state.samples), default=0)
        self.ctx.findings.sections["replication"] = {
            "job": self.job_target.name, "period_s": self.job_target.period_s,
            "replica": f"s3://{self.replica_bucket}/{self.replica_key(a.prefix)}",
            "canaries_written": len(self.state.canaries),
            "max_unreplicated_writes": worst,
            "max_last_sync_age_s": max((s["last_sync_age_s"] or 0 for s in self.state.samples),
                                       default=None),
            "lag_curve": self.state.samples,
        }

    def revert(self) -> None:
        self.state.writing = False
        self.job.start()
        a = self.ctx.asset
        for v in self.primary.list_versions(a.bucket, self.canary_prefix):
            self.primary.delete(a.bucket, v.key, v.version_id)
        # the restarted job propagates the deletions; wait for it, then clear the replica's
        # history of the canaries too
        deadline = self.ctx.clock.mono() + 3 * self.job_target.period_s + 10
        while self.ctx.clock.mono() < deadline and self.replica.list_keys(
                self.replica_bucket, self.replica_key(self.canary_prefix)):
            self.ctx.clock.sleep(0.2)
        for v in self.replica.list_versions(self.replica_bucket,
                                            self.replica_key(self.canary_prefix)):
            self.replica.delete(self.replica_bucket, v.key, v.version_id)
        if self.primary.list_keys(a.bucket, self.canary_prefix):
            raise StepFailed("canary objects are left on the primary site")
