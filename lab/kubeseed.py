"""The lab cluster's objects: GPU and CPU nodes, the predictor and its CPU fallback, Services.

:func:`seed_fleet` creates them in a :class:`lab.kubestore.KubeStore`; the tests seed the small
fleet without Services, ``lab up`` the full one whose pods run real model servers.
"""

from __future__ import annotations

from lab.kubepods import Obj
from lab.kubeservice import FALLBACK
from lab.kubestore import KubeStore


def seed_fleet(store: KubeStore, *, gpu_nodes: int = 3, replicas: int = 2,
               namespace: str = "inference", name: str = "lab-mlp",
               service_port: int | None = None, model: dict[str, str] | None = None,
               fallback_model: dict[str, str] | None = None) -> None:
    """A small GPU fleet: ``gpu_nodes`` nodes with one GPU each, a CPU node, the predictor
    Deployment of InferenceService ``name`` (one GPU per replica) and a budget of one. With a
    ``service_port``: a one-replica CPU fallback Deployment ``name``-cpu pinned to the CPU node,
    its Service, and the predictor's LoadBalancer Service on that port, failing over to the
    fallback while no predictor is ready. ``model``/``fallback_model`` become the containers'
    environment (what :mod:`lab.kuberuntime` runs)."""
    with store.cond:
        for i in range(gpu_nodes + 1):
            gpu = i < gpu_nodes
            node = f"gpu-{i}" if gpu else "cpu-0"
            store.create("nodes", {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node,
                                                      **({"drillbook.io/gpu": "true"}
                                                         if gpu else {})}},
                "spec": {},
                "status": {"allocatable": {"cpu": "8", "memory": "32Gi",
                                           "nvidia.com/gpu": "1" if gpu else "0"},
                           "capacity": {"cpu": "8", "memory": "32Gi",
                                        "nvidia.com/gpu": "1" if gpu else "0"},
                           "conditions": [{"type": "Ready", "status": "True",
                                           "reason": "KubeletReady"}]}})
        labels = {"app": name, "serving.kserve.io/inferenceservice": name}
        store.create("deployments", _deployment(f"{name}-predictor", namespace, labels,
                                                replicas, {"nvidia.com/gpu": "1"}, model, None))
        store.create("poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": f"{name}-pdb", "namespace": namespace},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}})
        store.create("inferenceservices", {
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "safetensors"}}}}})
        if service_port is None:
            return
        cpu_labels = {"app": f"{name}-cpu"}
        store.create("deployments", _deployment(
            f"{name}-cpu", namespace, cpu_labels, 1, None, fallback_model,
            {"kubernetes.io/hostname": "cpu-0"}))
        store.create("services", _service(f"{name}-cpu", namespace, cpu_labels, None, {}))
        store.create("services", _service(name, namespace, labels, service_port,
                                          {FALLBACK: f"{name}-cpu"}))


def _deployment(name: str, ns: str, labels: dict[str, str], replicas: int,
                limits: dict[str, str] | None, env: dict[str, str] | None,
                node_selector: dict[str, str] | None) -> Obj:
    container: Obj = {"name": "kserve-container", "image": "drillbook/lab-mlp:lab",
                      "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                      "readinessProbe": {"httpGet": {"path": "/v2/health/ready",
                                                     "port": 8080}}}
    if limits:
        container["resources"] = {"limits": limits}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    pod_spec: Obj = {"containers": [container]}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec}}}


def _service(name: str, ns: str, selector: dict[str, str], port: int | None,
             annotations: dict[str, str]) -> Obj:
    spec: Obj = {"selector": selector, "ports": [{"name": "http", "protocol": "TCP",
                                                  "port": port or 80,
                                                  "targetPort": "http"}]}
    svc: Obj = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": ns,
                             **({"annotations": annotations} if annotations else {})},
                "spec": {**spec, "type": "LoadBalancer" if port else "ClusterIP"}}
    if port:
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
    return svc
