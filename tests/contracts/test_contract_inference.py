"""The inference endpoint contract: the same assertions against the in-memory FakeEndpoint
(lab-free) and the real InferenceEndpoint on the lab's node (marked ``lab``): ready, answers the
golden inputs exactly and the same every time, reloads from the store and answers the same."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from harness.fakes.inference import FakeEndpoint
from harness.fakes.store import FakeStore
from harness.golden import Golden
from harness.inventory import InferenceTarget, S3Target, load_inventory
from harness.inventory.model import Secret
from harness.targets.inference import InferenceEndpoint
from harness.targets.protocols import ServingEndpoint


def _fake() -> tuple[ServingEndpoint, Golden]:
    store = FakeStore(S3Target("s", "http://127.0.0.1:9", "default", Secret("a"), Secret("b"),
                               drill_safe=True))
    store.create_bucket("models")
    data = b"\x00\x01" * 512
    store.put_bytes("models", "m/w.bin", data)
    store.put_bytes("models", "m/manifest.json", json.dumps({
        "format": "drillbook-manifest/1", "model": "m", "created_utc": "",
        "files": [{"path": "w.bin", "size": len(data),
                   "sha256": hashlib.sha256(data).hexdigest()}]}).encode())
    ep = FakeEndpoint(InferenceTarget("fake", "http://127.0.0.1:9", "m", drill_safe=True),
                      store, "models", "m/manifest.json")
    assert ep.load(timeout_s=1)[0]
    inputs = [[0.5, 1.5], [-1.0, 2.0]]
    return ep, Golden(inputs, ep.infer(inputs))


def _real(lab: Any) -> tuple[ServingEndpoint, Golden]:
    inventory = load_inventory(lab.inventory_path)
    return (InferenceEndpoint(inventory.inference("inference")),
            Golden.load(lab.asset_dir / "golden.json", require_outputs=True))


@pytest.fixture(params=["fake", pytest.param("lab", marks=pytest.mark.lab)])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[ServingEndpoint, Golden]]:
    yield _fake() if request.param == "fake" else _real(request.getfixturevalue("lab"))


def test_ready_and_answers_the_golden_inputs(served: tuple[ServingEndpoint, Golden]) -> None:
    ep, golden = served
    r = ep.readiness()
    assert r.ready and r.status == 200
    got = ep.infer(golden.inputs)
    assert len(got) == len(golden.inputs) and all(isinstance(x, float) for x in got[0])
    assert golden.compare(got).ok
    assert ep.infer(golden.inputs) == got  # deterministic: exact comparison is meaningful


def test_reload_from_the_store_serves_the_same(served: tuple[ServingEndpoint, Golden]) -> None:
    ep, golden = served
    ok, message = ep.load(timeout_s=60)
    assert ok, message
    assert ep.wait_ready(60).ready
    assert golden.compare(ep.infer(golden.inputs)).ok
