"""The model-registry contract: the same assertions against the in-memory FakeRegistry
(lab-free) and the lab's MLflow server (marked ``lab``): what a registry drill reads, and the
flattened view it compares, mean the same on both."""

from __future__ import annotations

import pytest

from harness.fakes.database import FakeDatabase
from harness.fakes.registry import FakeRegistry
from harness.inventory import MlflowTarget
from harness.journal import Clock
from harness.targets.protocols import RegistryAPI

KINDS = {"model", "model-tag", "alias", "version", "stage", "version-tag", "metric"}


def _fake() -> RegistryAPI:
    db = FakeDatabase("postgres", Clock())
    db.create_database("mlflow", "mlflow", {"registered_models": {}, "model_versions": {},
                                            "metrics": {}})
    reg = FakeRegistry(MlflowTarget("mlflow", "http://fake", True), db, "mlflow")
    reg.add_model("lab-mlp", 1000, tags={"team": "ml"}, aliases={"champion": "2"})
    reg.add_version("lab-mlp", "1", 1000, metrics={"accuracy": 0.9})
    reg.add_version("lab-mlp", "2", 2000, stage="Production", tags={"ok": "yes"},
                    metrics={"accuracy": 0.947})
    return reg


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.lab)])
def registry(request: pytest.FixtureRequest) -> RegistryAPI:
    if request.param == "fake":
        return _fake()
    from lab.registry import RegistryComponent
    client: RegistryAPI = RegistryComponent().client(request.getfixturevalue("lab"))
    return client


def test_answers_and_is_ready(registry: RegistryAPI) -> None:
    registry.ping()
    assert registry.wait_ready(5) is None


def test_models_versions_and_aliases(registry: RegistryAPI) -> None:
    models = registry.registered_models()
    assert models and [m.name for m in models] == sorted(m.name for m in models)
    for m in models:
        versions = registry.versions(m.name)
        assert [int(v.version) for v in versions] == sorted(int(v.version) for v in versions)
        assert all(v.name == m.name and v.created_ms > 0 for v in versions)
        assert set(m.aliases.values()) <= {v.version for v in versions}


def test_view_flattens_every_fact(registry: RegistryAPI) -> None:
    view = registry.view()
    assert {e.split(" ", 1)[0] for e in view} <= KINDS
    for m in registry.registered_models():
        assert f"model {m.name}" in view
        for alias, version in m.aliases.items():
            assert f"alias {m.name}@{alias} -> {version}" in view
        for v in registry.versions(m.name):
            assert f"stage {m.name}/{v.version} {v.stage}" in view
    assert any(e.startswith("metric ") for e in view)
    assert registry.view() == view  # reading changes nothing
