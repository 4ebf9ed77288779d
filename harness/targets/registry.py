"""The model registry adapter: an MLflow tracking/registry server over its REST API (2.0).

Plain HTTP (urllib), so the harness needs no MLflow client library. Reads give what a registry
drill compares: registered models with their tags and aliases, their versions with stage, status,
source, tags, and the metrics of the run each version came from. :meth:`MlflowRegistry.view`
flattens all of that into a set of entries (``"version lab-mlp/2 stage=Production"``) so two
views can be compared and their difference counted. The few writes (create a version, set a tag
or alias) are what the lab uses to seed and change its registry.

Errors: a server that does not answer raises :class:`~harness.errors.TargetUnreachable`; an answer
that is an error (the registry's database gone, for instance) raises :class:`RegistryError`,
an :class:`~harness.errors.Inconclusive` carrying the HTTP status and MLflow's error code.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from harness.errors import Inconclusive, TargetUnreachable
from harness.inventory import MlflowTarget

API = "/api/2.0/mlflow"


class RegistryError(Inconclusive):
    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    stage: str
    status: str
    source: str
    run_id: str
    created_ms: int
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    created_ms: int
    description: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> version


class MlflowRegistry:
    def __init__(self, target: MlflowTarget, *, timeout_s: float = 15.0) -> None:
        self.target = target
        self.timeout_s = timeout_s

    # -- transport -------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                 query: dict[str, str] | None = None, data: bytes | None = None) -> Any:
        url = self.target.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        payload = data if data is not None else (
            None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(url, data=payload, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            code, message = _error(raw)
            raise RegistryError(f"registry {self.target.name} answered HTTP {exc.code} to "
                                f"{method} {path}: {code} {message}", exc.code, code) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise TargetUnreachable(
                f"registry {self.target.name} ({self.target.url}) unreachable: "
                f"{getattr(exc, 'reason', exc)}") from exc
        try:
            return json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return {}

    def _get(self, path: str, **query: str) -> Any:
        return self._request("GET", API + path, query=query)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request("POST", API + path, body)

    def ping(self) -> None:
        """Raise unless the server answers and can read its store (a search touches the DB)."""
        self._get("/registered-models/search", max_results="1")

    def wait_ready(self, timeout_s: float, interval_s: float = 0.5) -> str | None:
        """Poll until the registry answers a search; None when it does, else the last error."""
        deadline = time.monotonic() + timeout_s
        last = "never answered"
        while True:
            try:
                self.ping()
                return None
            except Inconclusive as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                return last
            time.sleep(interval_s)

    # -- reads -----------------------------------------------------------------------------------

    def registered_models(self) -> list[RegisteredModel]:
        out: list[RegisteredModel] = []
        token = ""
        while True:
            q = {"max_results": "100"}
            if token:
                q["page_token"] = token
            page = self._get("/registered-models/search", **q)
            for m in page.get("registered_models", []):
                out.append(RegisteredModel(
                    m["name"], int(m.get("creation_timestamp", 0)), m.get("description", ""),
                    {t["key"]: t.get("value", "") for t in m.get("tags", [])},
                    {a["alias"]: str(a["version"]) for a in m.get("aliases", [])}))
            token = page.get("next_page_token", "")
            if not token:
                return sorted(out, key=lambda m: m.name)

    def versions(self, name: str) -> list[ModelVersion]:
        out: list[ModelVersion] = []
        token = ""
        while True:
            q = {"filter": f"name='{name}'", "max_results": "200"}
            if token:
                q["page_token"] = token
            page = self._get("/model-versions/search", **q)
            for v in page.get("model_versions", []):
                out.append(ModelVersion(
                    v["name"], str(v["version"]), v.get("current_stage", "None"),
                    v.get("status", ""), v.get("source", ""), v.get("run_id", ""),
                    int(v.get("creation_timestamp", 0)),
                    {t["key"]: t.get("value", "") for t in v.get("tags", [])}))
            token = page.get("next_page_token", "")
            if not token:
                return sorted(out, key=lambda v: int(v.version))

    def run_metrics(self, run_id: str) -> dict[str, float]:
        run = self._get("/runs/get", run_id=run_id).get("run", {})
        return {m["key"]: float(m["value"]) for m in run.get("data", {}).get("metrics", [])}

    def view(self) -> set[str]:
        """Everything a registry drill compares, one entry per fact."""
        entries: set[str] = set()
        for m in self.registered_models():
            entries.add(f"model {m.name}")
            entries.update(f"model-tag {m.name} {k}={v}" for k, v in m.tags.items())
            entries.update(f"alias {m.name}@{a} -> {v}" for a, v in m.aliases.items())
            for v in self.versions(m.name):
                ref = f"{m.name}/{v.version}"
                entries.add(f"version {ref} source={v.source} status={v.status}")
                entries.add(f"stage {ref} {v.stage}")
                entries.update(f"version-tag {ref} {k}={val}" for k, val in v.tags.items())
                if v.run_id:
                    entries.update(f"metric {ref} {k}={val!r}"
                                   for k, val in self.run_metrics(v.run_id).items())
        return entries

    # -- writes (the lab seeds and changes its registry with these) --------------------------------

    def experiment_id(self, name: str) -> str:
        try:
            return str(self._get("/experiments/get-by-name",
                                 experiment_name=name)["experiment"]["experiment_id"])
        except RegistryError as exc:
            if exc.code != "RESOURCE_DOES_NOT_EXIST":
                raise
        return str(self._post("/experiments/create", {"name": name})["experiment_id"])

    def create_run(self, experiment_id: str, run_name: str, *, metrics: dict[str, float],
                   params: dict[str, str], tags: dict[str, str]) -> tuple[str, str]:
        """A finished run with its params, metrics and tags; returns (run_id, artifact_uri)."""
        now = int(time.time() * 1000)
        run = self._post("/runs/create", {
            "experiment_id": experiment_id, "run_name": run_name, "start_time": now,
            "tags": [{"key": k, "value": v} for k, v in tags.items()]})["run"]["info"]
        run_id = str(run["run_id"])
        self._post("/runs/log-batch", {
            "run_id": run_id,
            "metrics": [{"key": k, "value": v, "timestamp": now, "step": 0}
                        for k, v in metrics.items()],
            "params": [{"key": k, "value": v} for k, v in params.items()]})
        self._post("/runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": now})
        return run_id, str(run["artifact_uri"])

    def upload_artifact(self, artifact_uri: str, rel_path: str, data: bytes) -> None:
        """Upload a file into a run's artifacts through the server's artifact proxy
        (``mlflow-artifacts:/...``): the server writes it to its artifact store."""
        prefix = "mlflow-artifacts:"
        if not artifact_uri.startswith(prefix):
            raise Inconclusive(f"artifact URI {artifact_uri!r} is not served by the registry "
                               f"(start it with --serve-artifacts)")
        path = artifact_uri[len(prefix):].lstrip("/") + "/" + rel_path
        self._request("PUT", "/api/2.0/mlflow-artifacts/artifacts/" + path, data=data)

    def list_artifacts(self, artifact_uri: str) -> list[str]:
        path = artifact_uri[len("mlflow-artifacts:"):].lstrip("/")
        res = self._request("GET", "/api/2.0/mlflow-artifacts/artifacts", query={"path": path})
        return sorted(f["path"] for f in res.get("files", []))

    def ensure_model(self, name: str, description: str = "") -> None:
        try:
            self._post("/registered-models/create", {"name": name, "description": description})
        except RegistryError as exc:
            if exc.code != "RESOURCE_ALREADY_EXISTS":
                raise

    def create_version(self, name: str, source: str, run_id: str,
                       tags: dict[str, str] | None = None) -> str:
        v = self._post("/model-versions/create", {
            "name": name, "source": source, "run_id": run_id,
            "tags": [{"key": k, "value": val} for k, val in (tags or {}).items()]})
        return str(v["model_version"]["version"])

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self._post("/registered-models/set-tag", {"name": name, "key": key, "value": value})

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._post("/model-versions/set-tag",
                   {"name": name, "version": version, "key": key, "value": value})

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._post("/registered-models/alias", {"name": name, "alias": alias, "version": version})

    def transition_stage(self, name: str, version: str, stage: str) -> None:
        self._post("/model-versions/transition-stage", {
            "name": name, "version": version, "stage": stage,
            "archive_existing_versions": False})


def _error(raw: bytes) -> tuple[str, str]:
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "", raw[:300].decode(errors="replace")
    if isinstance(doc, dict):
        return str(doc.get("error_code", "")), str(doc.get("message", doc.get("detail", "")))
    return "", str(doc)[:300]
