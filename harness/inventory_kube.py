"""The ``kube`` target kind of the inventory: one Kubernetes cluster the drills may touch.

Kept apart from :mod:`harness.inventory` so the loader only dispatches here. A kube target
names how to reach the cluster (a kubeconfig file and a context, or the in-cluster service
account), the namespaces a drill may disturb, how GPU nodes are recognised, and how many nodes
one drill may take out at most::

    targets:
      gpu-cluster:
        kind: kubernetes                        # or its short name, kube
        kubeconfig: /etc/drillbook/kubeconfig   # or in_cluster: true
        context: dc1-inference
        namespaces: [inference]                 # drill-safe namespaces (pods there may move)
        gpu_node_selector: "drillbook.io/drill-safe=true"   # optional: else allocatable GPUs
        gpu_resource: nvidia.com/gpu            # default
        max_nodes: 1                            # at most this many nodes per drill
        # the notready variant: how to stop and start a node's kubelet ({node} is replaced)
        kubelet_stop: [ssh, "{node}", sudo, systemctl, stop, kubelet]
        kubelet_start: [ssh, "{node}", sudo, systemctl, start, kubelet]
        gpu_fault_condition: GpuXidCriticalError   # the gpu-fault variant's node condition
        drill_safe: true
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.errors import InventoryError

Path_ = tuple[str | int, ...]


class FieldReader(Protocol):
    """What these parsers need from the loader's field reader (its located errors), named
    here so this module does not depend on how the loader is laid out."""

    def fail(self, path: Path_, message: str) -> InventoryError: ...

    def known(self, m: dict[str, Any], path: Path_, allowed: set[str]) -> None: ...

    def req(self, m: dict[str, Any], key: str, path: Path_) -> Any: ...

    def string(self, m: dict[str, Any], key: str, path: Path_, *, default: str | None = None,
               required: bool = True) -> str: ...

    def boolean(self, m: dict[str, Any], key: str, path: Path_, default: bool = False) -> bool: ...

KIND = "kube"
#: the target kinds naming a cluster (``kubernetes``, as the issue and most sites say it)
KINDS = (KIND, "kubernetes")
FIELDS = {"kind", "kubeconfig", "context", "in_cluster", "namespaces", "gpu_node_selector",
          "gpu_resource", "max_nodes", "drill_safe", "kubelet_stop", "kubelet_start",
          "gpu_fault_condition"}
DEFAULT_GPU_FAULT_CONDITION = "GpuXidCriticalError"


@dataclass(frozen=True)
class KubeTarget:
    """A Kubernetes cluster, as the inventory describes it."""

    name: str
    kubeconfig: Path | None
    context: str | None
    in_cluster: bool
    #: namespaces whose pods a drill may evict or delete (the drill-safe ones)
    namespaces: tuple[str, ...]
    #: a label selector for the GPU nodes; None: every node with allocatable gpu_resource
    gpu_node_selector: str | None
    gpu_resource: str
    #: the blast-radius limit: never more nodes than this in one drill
    max_nodes: int
    drill_safe: bool
    kind: str = KIND
    #: argv templates ({node}) that stop and start a node's kubelet (the notready variant)
    kubelet_stop: tuple[str, ...] = ()
    kubelet_start: tuple[str, ...] = ()
    #: the node condition a GPU health monitor sets on a GPU fault (the gpu-fault variant)
    gpu_fault_condition: str = DEFAULT_GPU_FAULT_CONDITION


def parse_kube_target(name: str, m: dict[str, Any], p: Path_, safe: bool, file: Path,
                      r: FieldReader) -> KubeTarget:
    """Validate one ``kind: kube`` entry; errors name the file, line and field."""
    r.known(m, p, FIELDS)
    in_cluster = r.boolean(m, "in_cluster", p)
    raw_cfg = r.string(m, "kubeconfig", p, required=False) or None
    if in_cluster and raw_cfg:
        raise r.fail(p + ("kubeconfig",), "give either kubeconfig or in_cluster: true, not both")
    if not in_cluster and not raw_cfg:
        raise r.fail(p + ("kubeconfig",), "is required (or in_cluster: true)")
    kubeconfig = None
    if raw_cfg:
        kubeconfig = (file.parent / raw_cfg).resolve()
        if not kubeconfig.is_file():
            raise r.fail(p + ("kubeconfig",), f"file {kubeconfig} does not exist")
    namespaces = m.get("namespaces")
    if (not isinstance(namespaces, list) or not namespaces
            or not all(isinstance(n, str) and n for n in namespaces)):
        raise r.fail(p + ("namespaces",),
                     "must be a non-empty list of the namespaces drills may disturb")
    limit = m.get("max_nodes", 1)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise r.fail(p + ("max_nodes",), f"must be a positive integer (got {limit!r})")
    stop, start = _argv(m, "kubelet_stop", p, r), _argv(m, "kubelet_start", p, r)
    if bool(stop) != bool(start):
        raise r.fail(p + ("kubelet_start" if stop else "kubelet_stop",),
                     "give both kubelet_stop and kubelet_start, or neither")
    return KubeTarget(
        kubelet_stop=stop, kubelet_start=start,
        gpu_fault_condition=r.string(m, "gpu_fault_condition", p,
                                     default=DEFAULT_GPU_FAULT_CONDITION),
        name=name, kubeconfig=kubeconfig,
        context=r.string(m, "context", p, required=False) or None, in_cluster=in_cluster,
        namespaces=tuple(namespaces),
        gpu_node_selector=r.string(m, "gpu_node_selector", p, required=False) or None,
        gpu_resource=r.string(m, "gpu_resource", p, default="nvidia.com/gpu"),
        max_nodes=limit, drill_safe=safe)


def _argv(m: dict[str, Any], key: str, p: Path_, r: FieldReader) -> tuple[str, ...]:
    raw = m.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) and x for x in raw):
        raise r.fail(p + (key,), "must be a non-empty list of strings (an argv; {node} is "
                                 "replaced by the node's name)")
    return tuple(raw)


ASSET_KIND = "kube-inference-service"
ASSET_FIELDS = {"id", "tier", "kind", "cluster", "namespace", "deployment", "inference_service",
                "served_by", "golden", "fallback_deployment", "fallback_golden"}


@dataclass(frozen=True)
class KubeWorkload:
    """An inference workload on a cluster: its Deployment and, with KServe, its
    InferenceService (``Asset.store`` names the kube target)."""

    namespace: str
    deployment: str
    inference_service: str | None = None
    #: the inference target traffic reaches the service through (load and the SLO gate)
    served_by: str | None = None
    #: golden inputs and outputs of the model, and of the CPU fallback's model
    golden: Path | None = None
    #: the CPU fallback's Deployment (same namespace): inference-site-loss degrades to it
    fallback_deployment: str | None = None
    fallback_golden: Path | None = None


def parse_kube_asset(m: dict[str, Any], p: Path_, targets: dict[str, Any],
                     r: FieldReader, file: Path | None = None) -> tuple[str, int, str,
                                                                        KubeWorkload]:
    """Validate a ``kind: kube-inference-service`` asset: (id, tier, cluster, workload)."""
    r.known(m, p, ASSET_FIELDS)
    tier = r.req(m, "tier", p)
    if isinstance(tier, bool) or tier not in (1, 2, 3):
        raise r.fail(p + ("tier",), f"must be 1, 2 or 3 (got {tier!r})")
    cluster = r.string(m, "cluster", p)
    t = targets.get(cluster)
    if not isinstance(t, KubeTarget):
        raise r.fail(p + ("cluster",), f"names {cluster!r}, which is not a kube target")
    ns = r.string(m, "namespace", p)
    if ns not in t.namespaces:
        raise r.fail(p + ("namespace",), f"{ns!r} is not one of target {cluster!r}'s drill-safe "
                                         f"namespaces ({', '.join(t.namespaces)})")
    served_by = r.string(m, "served_by", p, required=False) or None
    if served_by is not None and getattr(targets.get(served_by), "kind", None) != "inference":
        raise r.fail(p + ("served_by",), f"names {served_by!r}, which is not an inference "
                                         f"target")
    fallback = r.string(m, "fallback_deployment", p, required=False) or None
    fallback_golden = _file(m, "fallback_golden", p, r, file)
    if (fallback is None) != (fallback_golden is None):
        raise r.fail(p + ("fallback_golden" if fallback else "fallback_deployment",),
                     "give both fallback_deployment and fallback_golden, or neither")
    return (r.string(m, "id", p), int(tier), cluster,
            KubeWorkload(ns, r.string(m, "deployment", p),
                         r.string(m, "inference_service", p, required=False) or None,
                         served_by=served_by, golden=_file(m, "golden", p, r, file),
                         fallback_deployment=fallback, fallback_golden=fallback_golden))


def _file(m: dict[str, Any], key: str, p: Path_, r: FieldReader, file: Path | None) -> Path | None:
    raw = r.string(m, key, p, required=False) or None
    if raw is None:
        return None
    path = ((file.parent if file else Path.cwd()) / raw).resolve()
    if not path.is_file():
        raise r.fail(p + (key,), f"file {path} does not exist")
    return path
