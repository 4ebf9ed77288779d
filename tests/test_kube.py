"""The kube adapter against the lab's Kubernetes API (lab/kubeapi.py), over real HTTP.

Contract: every body the lab serves (objects, lists, Status errors, watch events) validates
against the official schemas the client's models are generated from, and so do the request
bodies it accepts. Adapter: drain through the Eviction API with the 429 retry, watch resume
after 410 Gone, error translation, and the controller behaviour drills rely on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from harness.errors import GuardRefused, Inconclusive, TargetUnreachable
from harness.inventory_kube import KubeTarget
from harness.targets.kube import (
    DRILL_TAINT_KEY,
    KubeCluster,
    KubeConflict,
    KubeNotFound,
    Taint,
)
from lab.kubeapi import KubeApi, seed_fleet
from lab.kubeschema import SchemaError, validate
from lab.kubestore import KubeStore

NS = "inference"
DEPLOY = "lab-mlp-predictor"


def target(kubeconfig: Path | None, **kw: object) -> KubeTarget:
    import dataclasses

    base = KubeTarget(name="lab", kubeconfig=kubeconfig, context="drillbook-lab",
                      in_cluster=False, namespaces=(NS,), gpu_node_selector=None,
                      gpu_resource="nvidia.com/gpu", max_nodes=1, drill_safe=True)
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture
def api() -> Iterator[KubeApi]:
    server = KubeApi(KubeStore(ready_delay_s=0.2))
    seed_fleet(server.store)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kube(api: KubeApi, tmp_path: Path) -> KubeCluster:
    k = KubeCluster(target(api.write_kubeconfig(tmp_path / "kubeconfig")))
    assert k.wait_rollout(NS, DEPLOY, 10).done
    return k


def _resource(path: str) -> str:
    parts = path.strip("/").split("/")
    if parts[-1] in ("scale", "eviction"):
        return parts[-1]
    for res in ("nodes", "pods", "deployments", "statefulsets", "leases",
                "poddisruptionbudgets", "inferenceservices"):
        if res in parts:
            return res
    raise AssertionError(f"unexpected path {path}")


def check_served(api: KubeApi) -> int:
    """Validate every body the server sent; returns how many were checked."""
    n = 0
    for path, body in list(api.responses):
        if path.startswith(("/version", "/_lab")):
            continue
        if "type" in body and "object" in body:  # a watch event
            obj = body["object"]
            if body["type"] == "ERROR":
                validate("status", obj)
            elif body["type"] != "BOOKMARK":
                validate(_resource(path), obj)
        elif body.get("kind") == "Status":
            validate("status", body)
        else:
            res = _resource(path)
            validate(res, body, as_list="items" in body)
        n += 1
    return n


# -- contract ---------------------------------------------------------------------------------


def test_every_served_object_matches_the_official_schema(api: KubeApi, kube: KubeCluster) -> None:
    victim = kube.pods(NS)[0].node
    assert victim is not None
    kube.add_taint(victim, Taint(DRILL_TAINT_KEY, "NoExecute", "drill"))
    assert kube.watch_until("pods", kube.core.list_namespaced_pod,
                            lambda c: sum(1 for p in c.values() if p.spec.node_name != victim
                                          and p.metadata.deletion_timestamp is None
                                          and p.status.phase == "Running") == 2, 10,
                            namespace=NS)
    kube.remove_taint(victim, DRILL_TAINT_KEY)
    kube.scale("Deployment", NS, DEPLOY, 3)
    assert kube.wait_rollout(NS, DEPLOY, 10).done
    assert kube.inference_service_ready(NS, "lab-mlp")[0]
    with pytest.raises(KubeNotFound):
        kube.node("no-such-node")
    checked = check_served(api)
    kinds = {_resource(p) for p, _ in api.responses if not p.startswith(("/version", "/_lab"))}
    assert checked > 10
    assert {"nodes", "pods", "deployments", "scale", "inferenceservices"} <= kinds


def test_schema_check_rejects_a_field_the_api_does_not_have() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
            "spec": {"unschedulable": True, "cordoned": True}}
    with pytest.raises(SchemaError, match="cordoned"):
        validate("nodes", node)
    with pytest.raises(SchemaError, match="effect"):
        validate("nodes", {**node, "spec": {"taints": [{"key": "k"}]}})


def test_lab_refuses_request_bodies_the_api_would_refuse(api: KubeApi, kube: KubeCluster) -> None:
    with pytest.raises(Inconclusive, match="422"):
        kube._patch_node("gpu-0", {"spec": {"cordoned": True}}, "bad patch")
    assert not kube.node("gpu-0").unschedulable
    http = urllib3.PoolManager()
    r = http.request("POST", f"{api.url}/api/v1/namespaces/{NS}/pods/x/eviction",
                     body=b'{"apiVersion": "policy/v1", "kind": "Eviction", "bogus": 1}',
                     headers={"Authorization": f"Bearer {api.token}",
                              "Content-Type": "application/json"})
    assert r.status == 422
    validate("status", r.json())


def test_leases_conflict_on_a_stale_resource_version(api: KubeApi, kube: KubeCluster) -> None:
    from kubernetes import client as k8s

    coord = k8s.CoordinationV1Api(kube.api_client)
    lease = k8s.V1Lease(metadata=k8s.V1ObjectMeta(name="drill", namespace=NS),
                        spec=k8s.V1LeaseSpec(holder_identity="a", lease_duration_seconds=30))
    made = coord.create_namespaced_lease(NS, lease)
    made.spec.holder_identity = "b"
    coord.replace_namespaced_lease("drill", NS, made)
    made.spec.holder_identity = "c"  # still carries the old resourceVersion
    with pytest.raises(KubeConflict):
        kube._call("replace lease", lambda: coord.replace_namespaced_lease("drill", NS, made))
    assert coord.read_namespaced_lease("drill", NS).spec.holder_identity == "b"
    check_served(api)


# -- adapter ----------------------------------------------------------------------------------


def test_gpu_nodes_by_allocatable_and_by_selector(api: KubeApi, kube: KubeCluster,
                                                  tmp_path: Path) -> None:
    assert [n.name for n in kube.gpu_nodes()] == ["gpu-0", "gpu-1", "gpu-2"]
    by_label = KubeCluster(target(tmp_path / "kubeconfig",
                                  gpu_node_selector="drillbook.io/gpu=true,"
                                                    "kubernetes.io/hostname!=gpu-1"))
    assert [n.name for n in by_label.gpu_nodes()] == ["gpu-0", "gpu-2"]


def test_drain_evicts_and_the_deployment_reschedules(kube: KubeCluster) -> None:
    victim = kube.pods(NS)[0].node
    assert victim is not None
    result = kube.drain(victim, namespaces=[NS], deadline_s=5)
    assert result.complete and len(result.evicted) == 1 and result.retries == 0
    assert kube.node(victim).unschedulable
    assert kube.watch_until("pods", kube.core.list_namespaced_pod,
                            lambda c: sum(1 for p in c.values() if p.status.phase == "Running"
                                          and p.spec.node_name != victim) == 2, 10,
                            namespace=NS)
    kube.uncordon(victim)
    assert not kube.node(victim).unschedulable


def test_drain_blocked_by_a_budget_is_a_finding_after_retries(api: KubeApi,
                                                              kube: KubeCluster) -> None:
    kube._call("tighten budget", lambda: kube.api_client.call_api(
        *kube.api_client.param_serialize(
            "PATCH", f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/lab-mlp-pdb",
            header_params={"Content-Type": "application/merge-patch+json"},
            body={"spec": {"maxUnavailable": 0}}, auth_settings=["BearerToken"])).read())
    slept: list[float] = []
    kube.sleep = slept.append
    victim = kube.pods(NS)[0].node
    assert victim is not None
    result = kube.drain(victim, namespaces=[NS], deadline_s=3, backoff_s=0.5)
    assert not result.complete and result.evicted == []
    assert "disruption budget" in next(iter(result.blocked.values()))
    assert result.retries >= 2 and slept[0] >= 1.0  # the server's Retry-After: 1
    assert all(p.node for p in kube.pods(NS))


def test_drain_retries_429_until_the_budget_allows(api: KubeApi, kube: KubeCluster) -> None:
    with api.store.cond:
        pdb = api.store.get("poddisruptionbudgets", NS, "lab-mlp-pdb")
        pdb["spec"]["maxUnavailable"] = 0
    api.store.reconcile()

    def relax(_: float) -> None:
        with api.store.cond:
            api.store.get("poddisruptionbudgets", NS, "lab-mlp-pdb")["spec"] = {
                "maxUnavailable": 1, "selector": pdb["spec"]["selector"]}
        api.store.reconcile()

    kube.sleep = relax
    victim = kube.pods(NS)[0].node
    assert victim is not None
    result = kube.drain(victim, namespaces=[NS], deadline_s=5)
    assert result.complete and result.retries == 1 and len(result.evicted) == 1


def test_drain_refuses_a_node_with_pods_outside_the_safe_namespaces(
        api: KubeApi, kube: KubeCluster) -> None:
    victim = kube.pods(NS)[0].node
    with api.store.cond:
        api.store.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": "billing", "namespace": "prod"},
                                  "spec": {"nodeName": victim,
                                           "containers": [{"name": "c", "image": "i"}]},
                                  "status": {"phase": "Running"}})
    with pytest.raises(GuardRefused, match="prod/billing"):
        kube.drain(str(victim), namespaces=[NS], deadline_s=1)
    assert victim is not None and not kube.node(victim).unschedulable


def test_watch_relists_after_410_gone(api: KubeApi, kube: KubeCluster) -> None:
    calls: list[int] = []

    def done(cache: dict[str, object]) -> bool:
        calls.append(len(cache))
        node = cache["gpu-1"]
        if len(calls) == 1:  # after the first list: move on and compact the history
            with api.store.cond:
                n = api.store.get("nodes", None, "gpu-1")
                api.store.replace("nodes", {**n, "metadata": {
                    **n["metadata"], "labels": {**n["metadata"]["labels"], "x": "1"}}})
            api.store.compact()
            return False
        return (node.metadata.labels or {}).get("x") == "1"  # type: ignore[attr-defined]

    assert kube.watch_until("nodes", kube.core.list_node, done, 10)
    assert kube.relists == 1
    assert any(b.get("type") == "ERROR" and b["object"]["code"] == 410
               for _, b in api.responses)
    check_served(api)


def test_a_relist_hands_on_what_the_watch_missed(api: KubeApi, kube: KubeCluster) -> None:
    """A pod deleted while the watch was behind the history reaches ``on_event`` as DELETED
    after the relist (a drill's pod watch counts lost pods from these events)."""
    pods = [p for p in api.store.objects.get("pods", {})]
    assert pods, "the lab cluster runs pods"
    ns, name = pods[0].split("/")
    seen: list[tuple[str, str]] = []
    calls: list[int] = []

    def done(cache: dict[str, object]) -> bool:
        calls.append(len(cache))
        if len(calls) == 1:
            with api.store.cond:
                api.store.delete("pods", ns, name)
            end = time.monotonic() + 10  # graceful: gone once its kubelet has stopped it
            while f"{ns}/{name}" in api.store.objects["pods"] and time.monotonic() < end:
                time.sleep(0.02)
            api.store.compact()
            return False
        return f"{ns}/{name}" not in cache

    assert kube.watch_until("pods", kube.core.list_pod_for_all_namespaces, done, 10,
                            on_event=lambda kind, o: seen.append((kind, o.metadata.name)))
    assert kube.relists == 1
    assert ("DELETED", name) in seen


def test_wait_node_sees_notready_from_missed_heartbeats(api: KubeApi, kube: KubeCluster) -> None:
    api.store.heartbeat["gpu-2"] = None
    assert kube.wait_node("gpu-2", lambda n: not n.ready, 10)
    assert kube.node_conditions("gpu-2")["Ready"].status == "Unknown"
    api.store.heartbeat.pop("gpu-2")
    assert kube.wait_node("gpu-2", lambda n: n.ready, 10)


def test_noexecute_taint_moves_pods_and_untaint_restores(kube: KubeCluster) -> None:
    victim = kube.pods(NS)[0].node
    assert victim is not None
    kube.add_taint(victim, Taint(DRILL_TAINT_KEY, "NoExecute", "drill"))
    kube.add_taint(victim, Taint(DRILL_TAINT_KEY, "NoExecute", "drill"))  # idempotent
    assert len(kube.node(victim).taints) == 1
    assert kube.watch_until("pods", kube.core.list_namespaced_pod,
                            lambda c: all(p.spec.node_name != victim for p in c.values()), 10,
                            namespace=NS)
    kube.remove_taint(victim, DRILL_TAINT_KEY)
    assert kube.node(victim).schedulable


def test_scale_and_rollout_status(kube: KubeCluster) -> None:
    kube.scale("Deployment", NS, DEPLOY, 1)
    assert kube.replicas("Deployment", NS, DEPLOY) == 1
    st = kube.wait_rollout(NS, DEPLOY, 10)
    assert st.done and st.replicas == 1
    kube.scale("Deployment", NS, DEPLOY, 4)  # three GPU nodes: one replica stays pending
    st = kube.wait_rollout(NS, DEPLOY, 1.5)
    assert not st.done and st.available == 3
    assert not kube.inference_service_ready(NS, "lab-mlp")[0]


# -- error translation ------------------------------------------------------------------------


def test_unreachable_cluster_is_target_unreachable(api: KubeApi, tmp_path: Path) -> None:
    cfg = api.write_kubeconfig(tmp_path / "kubeconfig")
    cfg.write_text(cfg.read_text().replace(api.url, "http://127.0.0.1:9"))
    k = KubeCluster(target(cfg), request_timeout_s=2)
    k.api_client.configuration.retries = 0
    with pytest.raises(TargetUnreachable, match="unreachable"):
        k.nodes()


def test_wrong_token_is_target_unreachable(api: KubeApi, tmp_path: Path) -> None:
    cfg = api.write_kubeconfig(tmp_path / "kubeconfig")
    cfg.write_text(cfg.read_text().replace(api.token, "wrong"))
    with pytest.raises(TargetUnreachable, match="401"):
        KubeCluster(target(cfg)).ping()


def test_bad_kubeconfig_or_context_is_target_unreachable(api: KubeApi, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = api.write_kubeconfig(tmp_path / "kubeconfig")
    with pytest.raises(TargetUnreachable, match="configuration"):
        KubeCluster(target(cfg, context="no-such-context"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(TargetUnreachable, match="configuration"):
        KubeCluster(target(None, in_cluster=True))


def test_server_errors_are_unreachable_and_others_inconclusive(kube: KubeCluster) -> None:
    from kubernetes.client.exceptions import ApiException

    def fail(status: int) -> None:
        raise ApiException(status=status, reason="x")

    with pytest.raises(TargetUnreachable):
        kube._call("x", lambda: fail(503))
    with pytest.raises(TargetUnreachable, match="RBAC"):
        kube._call("x", lambda: fail(403))
    with pytest.raises(Inconclusive) as info:
        kube._call("x", lambda: fail(400))
    assert not isinstance(info.value, TargetUnreachable)


def test_concurrent_taint_edits_retry_on_conflict(api: KubeApi, kube: KubeCluster) -> None:
    errors: list[BaseException] = []

    def taint(key: str) -> None:
        try:
            kube.add_taint("gpu-0", Taint(key, "NoSchedule"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=taint, args=(f"k{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {t.key for t in kube.node("gpu-0").taints} == {"k0", "k1", "k2", "k3"}
