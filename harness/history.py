"""The drill history: every drill's key numbers in a SQLite file under the evidence folder.

Each drill is appended when its evidence is written (``evidence/history.sqlite``). The history
answers what a quarterly review asks: RTO and RPO per scenario and asset across drills, and
whether recovery got slower. A *regression* is a drill whose measured RTO is worse than the
previous measured RTO of the same series (scenario, variant, asset) by more than both a relative
tolerance and an absolute one (small absolute jitter on a seconds-long recovery is noise, not a
regression). Unmeasured RTOs never count as "better" or "worse": they are skipped in comparisons.

``rto_s`` is the RTO the objective is judged on, the service RTO; ``rto_verified_s`` (until the
harness's verification passed) and ``verification_s`` are kept beside it. A history written before
the service RTO existed is migrated in place: its ``rto_s`` was the verified figure, so it moves
to ``rto_verified_s`` and the service RTO of those drills is "not measured", never a guess.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.model import Evidence, iso

HISTORY_FILE = "history.sqlite"
DEFAULT_TOLERANCE = 0.20  # 20 % slower than the previous drill ...
DEFAULT_MIN_DELTA_S = 1.0  # ... and at least one second slower

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drills (
    drill_id        TEXT PRIMARY KEY,
    scenario        TEXT NOT NULL,
    variant         TEXT NOT NULL,
    asset           TEXT NOT NULL,
    tier            INTEGER NOT NULL,
    site            TEXT NOT NULL,
    verdict         TEXT NOT NULL,
    started_utc     TEXT NOT NULL,
    finished_utc    TEXT NOT NULL,
    rto_s           REAL,
    rto_target_s    REAL NOT NULL,
    rto_met         INTEGER,
    rpo_s           REAL,
    rpo_target_s    REAL NOT NULL,
    rpo_met         INTEGER,
    directory       TEXT NOT NULL,
    evidence_sha256 TEXT NOT NULL,
    runbook_sha256  TEXT,
    git_commit      TEXT,
    reasons         TEXT NOT NULL,
    rto_verified_s  REAL,
    verification_s  REAL
);
CREATE INDEX IF NOT EXISTS drills_series ON drills (scenario, variant, asset, started_utc);
"""


@dataclass(frozen=True)
class DrillRow:
    drill_id: str
    scenario: str
    variant: str
    asset: str
    tier: int
    site: str
    verdict: str
    started_utc: str
    rto_s: float | None
    rto_target_s: float
    rto_met: bool | None
    rpo_s: float | None
    rpo_target_s: float
    rpo_met: bool | None
    directory: str
    reasons: tuple[str, ...]
    rto_verified_s: float | None = None
    verification_s: float | None = None

    @property
    def series(self) -> str:
        return f"{self.scenario}/{self.variant} @ {self.asset}"


@dataclass(frozen=True)
class Regression:
    drill: DrillRow
    previous: DrillRow

    @property
    def message(self) -> str:
        assert self.drill.rto_s is not None and self.previous.rto_s is not None
        return (f"RTO regression in {self.drill.series}: {self.drill.rto_s:.2f} s in "
                f"{self.drill.drill_id}, was {self.previous.rto_s:.2f} s in "
                f"{self.previous.drill_id}")


def _opt_bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


class History:
    def __init__(self, conn: sqlite3.Connection, root: Path) -> None:
        self.conn = conn
        self.root = root

    @classmethod
    @contextmanager
    def open(cls, root: Path) -> Iterator[History]:
        root.mkdir(parents=True, exist_ok=True)
        # parallel drills (pytest-xdist workers) append to the same file: wait for the lock
        conn = sqlite3.connect(root / HISTORY_FILE, timeout=60)
        try:
            conn.executescript(_SCHEMA)
            _migrate(conn)
            yield cls(conn, root)
            conn.commit()
        finally:
            conn.close()

    def record(self, evidence: Evidence | Mapping[str, Any], directory: Path) -> None:
        """Append one drill from its evidence (idempotent per drill id); a document is read
        into the model first."""
        try:
            rel = directory.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            rel = str(directory.resolve())
        ev = evidence if isinstance(evidence, Evidence) else Evidence.from_json(evidence)
        runbook = None if ev.audit is None else ev.audit.runbook
        verified = ev.rto_verified
        self.conn.execute(
            f"INSERT OR REPLACE INTO drills ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _COLUMNS)})",
            (ev.drill_id, ev.scenario, ev.variant, ev.asset, ev.tier, ev.site, ev.verdict.value,
             iso(ev.started), iso(ev.finished), ev.rto.measured_s, ev.rto.target_s, ev.rto.met,
             ev.rpo.measured_s, ev.rpo.target_s, ev.rpo.met, rel,
             hashlib.sha256(json.dumps(ev.to_json(), sort_keys=True).encode()).hexdigest(),
             None if runbook is None else runbook.definition_sha256,
             None if runbook is None else runbook.git_commit, json.dumps(list(ev.reasons)),
             None if verified is None else verified.measured_s,
             None if verified is None else verified.verification_s))

    def rows(self) -> list[DrillRow]:
        cur = self.conn.execute(
            "SELECT drill_id, scenario, variant, asset, tier, site, verdict, started_utc, rto_s, "
            "rto_target_s, rto_met, rpo_s, rpo_target_s, rpo_met, directory, reasons, "
            "rto_verified_s, verification_s FROM drills ORDER BY started_utc, drill_id")
        return [DrillRow(r[0], r[1], r[2], r[3], int(r[4]), r[5], r[6], r[7], r[8], r[9],
                         _opt_bool(r[10]), r[11], r[12], _opt_bool(r[13]), r[14],
                         tuple(json.loads(r[15])), r[16], r[17]) for r in cur.fetchall()]


_COLUMNS = ("drill_id", "scenario", "variant", "asset", "tier", "site", "verdict", "started_utc",
            "finished_utc", "rto_s", "rto_target_s", "rto_met", "rpo_s", "rpo_target_s",
            "rpo_met", "directory", "evidence_sha256", "runbook_sha256", "git_commit", "reasons",
            "rto_verified_s", "verification_s")


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a history written before the service RTO up to date (see the module docstring)."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(drills)")}
    if "rto_verified_s" in have:
        return
    conn.execute("ALTER TABLE drills ADD COLUMN rto_verified_s REAL")
    conn.execute("ALTER TABLE drills ADD COLUMN verification_s REAL")
    # the old rto_s was fault -> verified, and whether that met the target is not the service's
    conn.execute("UPDATE drills SET rto_verified_s = rto_s, rto_s = NULL, rto_met = NULL")
    conn.commit()


def series(rows: list[DrillRow]) -> dict[str, list[DrillRow]]:
    out: dict[str, list[DrillRow]] = {}
    for r in rows:
        out.setdefault(r.series, []).append(r)
    return out


def regressions(rows: list[DrillRow], *, tolerance: float = DEFAULT_TOLERANCE,
                min_delta_s: float = DEFAULT_MIN_DELTA_S) -> list[Regression]:
    """Every drill whose RTO is worse than its series' previous measured RTO beyond tolerance."""
    out = []
    for drills in series(rows).values():
        previous: DrillRow | None = None
        for d in drills:
            if d.rto_s is None:
                continue
            if previous is not None and previous.rto_s is not None:
                delta = d.rto_s - previous.rto_s
                if delta > min_delta_s and d.rto_s > previous.rto_s * (1 + tolerance):
                    out.append(Regression(d, previous))
            previous = d
    return out


def load(root: Path) -> list[DrillRow]:
    if not (root / HISTORY_FILE).exists():
        return []
    with History.open(root) as h:
        return h.rows()
