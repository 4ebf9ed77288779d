"""Contract: every kind of object the lab's Kubernetes API serves validates against the official
Kubernetes JSON schemas (the ``kubernetes-validate`` package's bundled, strict schemas for
1.37: unknown fields are errors), watch events and Status errors included.

KServe's InferenceService is a custom resource with no schema in that package; it is checked by
:mod:`lab.kubeschema` (ObjectMeta and KServe's condition shape), and this test says so by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kubernetes import client as k8s
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource
from test_kube import target

from harness.targets.kube import DRILL_TAINT_KEY, KubeCluster, KubeNotFound, Taint
from harness.targets.kube_model import Condition
from lab.kubeapi import KubeApi, seed_fleet
from lab.kubeschema import validate as lab_validate
from lab.kubestore import KubeStore
from lab.procs import free_port

K8S_VERSION = "1.37.0"
NS = "inference"
#: every kind the lab serves, and the request bodies it accepts
SERVED = {"Node", "NodeList", "Pod", "PodList", "Deployment", "DeploymentList", "StatefulSet",
          "PodDisruptionBudgetList", "Lease", "LeaseList", "Service", "ServiceList",
          "Endpoints", "Scale", "Status"}


def official(obj: dict[str, Any]) -> str:
    """Validate with the official schema; the kind checked."""
    if obj.get("kind") == "Status":
        # a meta/v1 kind served as apiVersion v1: validate() looks for status-v1.json, while
        # the package files its schema as status-meta-v1.json; the same schema, used the same way
        d = f"kubernetes-json-schema/v{K8S_VERSION}-local-strict"
        schema = kv_utils.schema_contents(f"{d}/status-meta-v1.json", K8S_VERSION)
        defs = kv_utils.schema_contents(f"{d}/_definitions.json", K8S_VERSION)
        registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
        jsonschema.Draft202012Validator(schema, registry=registry).validate(obj)
    else:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    return str(obj["kind"])


@pytest.fixture
def api() -> Iterator[KubeApi]:
    server = KubeApi(KubeStore(ready_delay_s=0.1))
    seed_fleet(server.store, service_port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_every_kind_served_validates_against_the_official_schemas(api: KubeApi,
                                                                  tmp_path: Path) -> None:
    kube = KubeCluster(target(api.write_kubeconfig(tmp_path / "kubeconfig")))
    assert kube.wait_rollout(NS, "lab-mlp-predictor", 10).done
    victim = kube.pods(NS, selector="app=lab-mlp")[0].node
    assert victim is not None
    kube.add_taint(victim, Taint(DRILL_TAINT_KEY, "NoExecute", "drill"))
    kube.set_node_condition(victim, Condition("GpuXidCriticalError", "True", "Xid", "drill"))
    kube.clear_node_condition(victim, "GpuXidCriticalError")
    kube.remove_taint(victim, DRILL_TAINT_KEY)
    kube.drain("gpu-2", namespaces=[NS], deadline_s=2)
    kube.uncordon("gpu-2")
    kube.scale("Deployment", NS, "lab-mlp-predictor", 3)
    assert kube.wait_rollout(NS, "lab-mlp-predictor", 10).done
    kube.ready_endpoints(NS, "lab-mlp")
    kube.gpu_nodes()
    assert kube.inference_service_ready(NS, "lab-mlp")[0]
    kube.node(victim)
    core, apps = k8s.CoreV1Api(kube.api_client), k8s.AppsV1Api(kube.api_client)
    core.list_namespaced_service(NS)
    core.read_namespaced_service("lab-mlp", NS)
    k8s.PolicyV1Api(kube.api_client).list_namespaced_pod_disruption_budget(NS)
    coord = k8s.CoordinationV1Api(kube.api_client)
    coord.create_namespaced_lease(NS, k8s.V1Lease(metadata=k8s.V1ObjectMeta(name="l"),
                                                  spec=k8s.V1LeaseSpec(holder_identity="a")))
    coord.list_namespaced_lease(NS)
    apps.create_namespaced_stateful_set(NS, k8s.V1StatefulSet(
        metadata=k8s.V1ObjectMeta(name="s"), spec=k8s.V1StatefulSetSpec(
            selector=k8s.V1LabelSelector(match_labels={"a": "s"}), service_name="s",
            template=k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels={"a": "s"}),
                                           spec=k8s.V1PodSpec(containers=[
                                               k8s.V1Container(name="c", image="i")])))))
    kube.replicas("StatefulSet", NS, "s")
    with pytest.raises(KubeNotFound):
        kube.node("no-such-node")

    checked: set[str] = set()
    custom = 0
    for path, body in list(api.responses):
        if path.startswith(("/version", "/_lab")):
            continue
        if body.get("type") == "BOOKMARK":  # kind, apiVersion and a resourceVersion only
            continue
        objs = [body["object"]] if "type" in body and "object" in body else [body]
        for item in body.get("items", []):  # list items carry no kind on the wire
            objs.append({"apiVersion": body["apiVersion"],
                         "kind": body["kind"].removesuffix("List"), **item})
        for obj in objs:
            if obj["kind"].startswith("InferenceService"):
                lab_validate("inferenceservices", obj, as_list="items" in obj)
                custom += 1
            else:
                checked.add(official(obj))
    assert SERVED <= checked, f"kinds never served in this run: {SERVED - checked}"
    assert custom > 0
    for request in ({"apiVersion": "policy/v1", "kind": "Eviction",
                     "metadata": {"name": "p", "namespace": NS}},):
        official(request)


def test_the_official_schemas_reject_what_the_api_would_reject() -> None:
    with pytest.raises(kubernetes_validate.ValidationError):
        official({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
                  "spec": {"cordoned": True}})
    with pytest.raises(jsonschema.ValidationError):
        official({"apiVersion": "v1", "kind": "Status", "metadata": {}, "code": "404"})
