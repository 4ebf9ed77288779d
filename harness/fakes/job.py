"""An in-memory periodic job for unit tests: :class:`FakeJob` implements
:class:`harness.targets.protocols.JobAPI` with the meaning of harness/targets/job.py.

The job runs its ``work`` every ``period_s`` of the drill's clock while it is started (a run
that has ended by the time the job is looked at is recorded with the times it ran), and once, now,
on ``run_once``, which takes ``duration_s`` of the clock. ``work`` returns the run's detail (a backup's ``{"snapshot": id}``) or raises
:class:`JobFailed` with the error text the store gave, which the run records, as the real job's
status file does. Safe to read from several threads (the replication drill samples from one).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from harness.errors import TargetUnreachable
from harness.journal import Clock
from harness.targets.job import JobRun

Work = Callable[[], dict[str, Any]]


class JobFailed(Exception):
    """A run of the job failed; the message is what the job recorded as its error."""


class FakeJob:
    def __init__(self, name: str, clock: Clock, period_s: float, work: Work, *,
                 running: bool = True, duration_s: float = 1.0) -> None:
        self.name = name
        #: how long a run takes on the clock (``run_once`` sleeps it)
        self.duration_s = duration_s
        self.clock = clock
        self.period_s = period_s
        self.work = work
        self._runs: list[JobRun] = []
        self._lock = threading.RLock()
        self._next: float | None = clock.mono() + period_s if running else None

    @property
    def running(self) -> bool:
        return self._next is not None

    def _utc_at(self, mono: float) -> datetime:
        return self.clock.utc() - timedelta(seconds=self.clock.mono() - mono)

    def _execute(self, started: datetime, ended: datetime) -> JobRun:
        try:
            detail, ok, error = self.work(), True, ""
        except (JobFailed, TargetUnreachable) as exc:
            detail, ok, error = {}, False, str(exc)
        run = JobRun(started, ended, ok, error, {"ok": ok, "error": error, **detail})
        self._runs.append(run)
        return run

    def _catch_up(self) -> None:
        while self._next is not None and self._next + self.duration_s <= self.clock.mono():
            self._execute(self._utc_at(self._next), self._utc_at(self._next + self.duration_s))
            self._next += self.period_s

    # -- the protocol ---------------------------------------------------------------------------

    def runs(self) -> list[JobRun]:
        with self._lock:
            self._catch_up()
            return list(self._runs)

    def last_success(self) -> JobRun | None:
        ok = [r for r in self.runs() if r.ok]
        return ok[-1] if ok else None

    def runs_since(self, when: datetime) -> list[JobRun]:
        return [r for r in self.runs() if r.started >= when]

    def start(self, timeout_s: float = 60.0) -> None:
        with self._lock:
            self._catch_up()
            if self._next is None:
                self._next = self.clock.mono() + self.period_s

    def stop(self, timeout_s: float = 60.0) -> None:
        with self._lock:
            self._catch_up()
            self._next = None

    def run_once(self, timeout_s: float = 600.0) -> str:
        with self._lock:
            self._catch_up()
            started = self.clock.utc()
            self.clock.sleep(self.duration_s)
            run = self._execute(started, self.clock.utc())
        if not run.ok:
            raise TargetUnreachable(f"job {self.name}: run exited 1: {run.error}")
        return ""
