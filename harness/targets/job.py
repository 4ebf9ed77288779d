"""The periodic-job adapter: a backup or replication job described in the inventory.

A job is started, stopped and run once through commands (``systemctl start backup.timer`` on a
real site; ``python -m lab.backup_scheduler ...`` in the lab) and records every run in a status
file: one JSON object per line with ``started_utc``, ``ended_utc``, ``ok``, ``error`` and, for a
backup, the ``snapshot`` it made. Drills read that record to see what the job saw (the store's own
error text), and when it last succeeded.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness.errors import TargetUnreachable
from harness.inventory import JobTarget


@dataclass(frozen=True)
class JobRun:
    started: datetime
    ended: datetime
    ok: bool
    error: str
    detail: dict[str, Any]

    @property
    def snapshot(self) -> str | None:
        snap = self.detail.get("snapshot")
        return str(snap) if snap else None


class Job:
    def __init__(self, target: JobTarget) -> None:
        self.target = target

    def runs(self) -> list[JobRun]:
        """Every recorded run, oldest first (an absent file means the job never ran)."""
        try:
            lines = self.target.status_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out: list[JobRun] = []
        for line in lines:
            try:
                doc = json.loads(line)
                out.append(JobRun(datetime.fromisoformat(doc["started_utc"]),
                                  datetime.fromisoformat(doc["ended_utc"]), bool(doc["ok"]),
                                  str(doc.get("error") or ""), doc))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash is not a run
        return out

    def last_success(self) -> JobRun | None:
        ok = [r for r in self.runs() if r.ok]
        return ok[-1] if ok else None

    def runs_since(self, when: datetime) -> list[JobRun]:
        return [r for r in self.runs() if r.started >= when]

    def _command(self, argv: tuple[str, ...], what: str, timeout_s: float) -> str:
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s,
                                  check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise TargetUnreachable(f"job {self.target.name}: {what} timed out") from exc
        except OSError as exc:
            raise TargetUnreachable(f"job {self.target.name}: cannot {what}: {exc}") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise TargetUnreachable(f"job {self.target.name}: {what} exited "
                                    f"{proc.returncode}: {' | '.join(tail)}")
        return proc.stdout

    def start(self, timeout_s: float = 60.0) -> None:
        self._command(self.target.start_command, "start", timeout_s)

    def stop(self, timeout_s: float = 60.0) -> None:
        self._command(self.target.stop_command, "stop", timeout_s)

    def run_once(self, timeout_s: float = 600.0) -> str:
        """Run the job now, in the foreground; raises TargetUnreachable if the run fails."""
        return self._command(self.target.run_command, "run", timeout_s)
