"""An in-memory model registry whose state lives in a :class:`~harness.fakes.database.
FakeDatabase`, as MLflow's lives in PostgreSQL: drop the database and the registry answers with an
error; restore it and the registry serves what the restored rows hold.

:class:`FakeRegistry` implements :class:`harness.targets.protocols.RegistryAPI`. It subclasses the
real :class:`~harness.targets.registry.MlflowRegistry` and replaces only its reads (the REST
transport), so :meth:`view`, the flattened comparison the drills make, is the real code.
"""

from __future__ import annotations

import json
from typing import Any

from harness.errors import Inconclusive, TargetUnreachable
from harness.fakes.database import FakeDatabase
from harness.inventory import MlflowTarget
from harness.targets.registry import MlflowRegistry, ModelVersion, RegisteredModel, RegistryError

MODELS, VERSIONS, METRICS = "registered_models", "model_versions", "metrics"


class FakeRegistry(MlflowRegistry):
    def __init__(self, target: MlflowTarget, db: FakeDatabase, database: str) -> None:
        super().__init__(target)
        self.db = db
        self.database = database
        self.running = True

    # -- set-up for tests (writes by the registry's users) ---------------------------------------

    def add_model(self, name: str, created_ms: int, *, tags: dict[str, str] | None = None,
                  aliases: dict[str, str] | None = None) -> None:
        self.db.put_row(self.database, MODELS, name, {
            "created_ms": created_ms, "tags": json.dumps(tags or {}),
            "aliases": json.dumps(aliases or {})})

    def add_version(self, name: str, version: str, created_ms: int, *, stage: str = "None",
                    tags: dict[str, str] | None = None,
                    metrics: dict[str, float] | None = None) -> None:
        run_id = f"run-{name}-{version}"
        self.db.put_row(self.database, VERSIONS, f"{name}/{version}", {
            "name": name, "version": version, "stage": stage, "status": "READY",
            "source": f"models:/{name}/{version}", "run_id": run_id, "created_ms": created_ms,
            "tags": json.dumps(tags or {})})
        for k, v in (metrics or {}).items():
            self.db.put_row(self.database, METRICS, f"{run_id}/{k}",
                            {"run_id": run_id, "key": k, "value": v})

    def set_alias(self, name: str, alias: str, version: str) -> None:
        row = self.db.rows(self.database, MODELS)[name]
        aliases = json.loads(row["aliases"])
        aliases[alias] = version
        self.db.put_row(self.database, MODELS, name, {**row, "aliases": json.dumps(aliases)})

    # -- reads -----------------------------------------------------------------------------------

    def _rows(self, table: str) -> dict[str, dict[str, Any]]:
        if not self.running:
            raise TargetUnreachable(f"registry {self.target.name} ({self.target.url}) "
                                    f"unreachable: stopped")
        try:
            return self.db.rows(self.database, table)
        except Inconclusive as exc:  # the database is gone or its server down: MLflow says 500
            raise RegistryError(f"registry {self.target.name} answered HTTP 500: {exc}", 500,
                                "INTERNAL_ERROR") from exc

    def ping(self) -> None:
        self._rows(MODELS)

    def wait_ready(self, timeout_s: float, interval_s: float = 0.5) -> str | None:
        # nothing in memory comes up later: one probe is the whole wait
        try:
            self.ping()
        except Inconclusive as exc:
            return str(exc)
        return None

    def registered_models(self) -> list[RegisteredModel]:
        return [RegisteredModel(name, int(r["created_ms"]), "", json.loads(r["tags"]),
                                json.loads(r["aliases"]))
                for name, r in sorted(self._rows(MODELS).items())]

    def versions(self, name: str) -> list[ModelVersion]:
        out = [ModelVersion(r["name"], r["version"], r["stage"], r["status"], r["source"],
                            r["run_id"], int(r["created_ms"]), json.loads(r["tags"]))
               for r in self._rows(VERSIONS).values() if r["name"] == name]
        return sorted(out, key=lambda v: int(v.version))

    def run_metrics(self, run_id: str) -> dict[str, float]:
        return {r["key"]: float(r["value"]) for r in self._rows(METRICS).values()
                if r["run_id"] == run_id}
