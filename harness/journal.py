"""The clock and the append-only journal.

Durations come from the monotonic clock (immune to NTP steps); the record carries UTC wall time.
Each journal line is written, flushed and fsynced as it happens, so a drill that crashes or is
killed still leaves a readable account of what it did up to that instant.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from harness.model import Event, IntegrityCheck, Phase, Scalar, StepRecord, utc_now


class Clock:
    """Both clocks read together; tests substitute a fake one."""

    def mono(self) -> float:
        return time.monotonic()

    def utc(self) -> datetime:
        return utc_now()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ManualClock(Clock):
    """A clock that moves only when slept on or advanced: unit tests of scenarios run on it, so
    waits cost no time and durations in the evidence are exact."""

    def __init__(self, start: datetime | None = None) -> None:
        self._mono = 1000.0
        self._start = start or utc_now()

    def mono(self) -> float:
        return self._mono

    def utc(self) -> datetime:
        return self._start + timedelta(seconds=self._mono - 1000.0)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._mono += seconds


class Journal:
    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self.events: list[Event] = []
        self.steps: list[StepRecord] = []
        self.integrity: list[IntegrityCheck] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = path.open("a", encoding="utf-8")

    def _write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(record, sort_keys=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def event(self, name: str, phase: Phase, **detail: Scalar) -> Event:
        ev = Event(len(self.events), name, phase, self.clock.utc(), self.clock.mono(), detail)
        self.events.append(ev)
        self._write({"type": "event", **ev.to_json()})
        return ev

    def step(self, record: StepRecord) -> None:
        self.steps.append(record)
        self._write({"type": "step", **record.to_json()})

    def check(self, check: IntegrityCheck) -> None:
        self.integrity.append(check)
        self._write({"type": "integrity", **check.to_json()})

    def note(self, kind: str, **data: Any) -> None:
        self._write({"type": kind, "utc": self.clock.utc().isoformat(), **data})

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
