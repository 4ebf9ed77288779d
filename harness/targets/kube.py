"""The Kubernetes adapter: one cluster, driven through the official ``kubernetes`` client.

What drills need from a cluster: find the GPU nodes (allocatable ``nvidia.com/gpu`` or a label
selector), cordon and uncordon them, add and remove taints (NoExecute makes a node's pods leave
as a failed node's do), drain a node through the Eviction API (a PodDisruptionBudget's 429 is
retried with backoff until a deadline; what stays blocked is returned as a finding, never
forced), delete pods, scale Deployments and StatefulSets, read rollout status, KServe
``InferenceService`` readiness and node conditions. Waits are watches from a list's
resourceVersion (bookmarks keep it fresh; a 410 Gone relists and resumes), never sleep loops.

Errors are translated here, at the boundary (:meth:`KubeCluster._call`)::

    urllib3 / socket errors, 5xx, 401, 403   -> TargetUnreachable  (INCONCLUSIVE)
    kubeconfig or context cannot be loaded   -> TargetUnreachable
    404                                      -> KubeNotFound       (an Inconclusive)
    409 (resourceVersion moved)              -> KubeConflict       (retried where it is safe)
    429 (a disruption budget said no)        -> KubeTooManyRequests
    410 (a watch fell too far behind)        -> KubeGone           (relisted by the waits)
    anything else the API refuses            -> Inconclusive, with the API's Status message
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes import client as k8s
from kubernetes import config as _k8s_config
from kubernetes import watch as _k8s_watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from harness.errors import GuardRefused, Inconclusive, TargetUnreachable
from harness.inventory_kube import KubeTarget
from harness.targets.kube_model import (
    Condition,
    DrainResult,
    NodeInfo,
    PodInfo,
    RolloutStatus,
    Taint,
    node_info,
    pod_info,
    rollout_of,
)

__all__ = ["Condition", "DrainResult", "KubeCluster", "NodeInfo", "PodInfo", "RolloutStatus",
           "Taint", "node_info", "pod_info", "rollout_of"]

T = TypeVar("T")

# the client's config loaders and Watch carry no annotations
k8s_config: Any = _k8s_config
k8s_watch: Any = _k8s_watch

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
#: the taint drills put on a node; removed by key on revert
DRILL_TAINT_KEY = "drillbook.io/drill"
KSERVE = ("serving.kserve.io", "v1beta1", "inferenceservices")


class KubeNotFound(Inconclusive):
    """The object does not exist (404)."""


class KubeConflict(Inconclusive):
    """Someone else changed the object since it was read (409)."""


class KubeTooManyRequests(Inconclusive):
    """The API said 429: for an eviction, a PodDisruptionBudget does not allow it now."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class KubeGone(Inconclusive):
    """A watch's resourceVersion is too old (410): list again and watch from there."""


def _api_client(target: KubeTarget) -> Any:
    """An ApiClient for the target's kubeconfig and context, or the in-cluster account."""
    try:
        if target.in_cluster:
            cfg = k8s.Configuration()
            k8s_config.load_incluster_config(client_configuration=cfg)
            return k8s.ApiClient(cfg)
        return k8s_config.new_client_from_config(
            config_file=str(target.kubeconfig) if target.kubeconfig else None,
            context=target.context)
    except (ConfigException, OSError) as exc:
        raise TargetUnreachable(f"cluster {target.name}: cannot load its configuration: "
                                f"{exc}") from exc


class KubeCluster:
    """One cluster, one set of credentials. Every API call goes through :meth:`_call`."""

    def __init__(self, target: KubeTarget, *, api_client: Any | None = None,
                 request_timeout_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.target = target
        self.api_client = api_client if api_client is not None else _api_client(target)
        self.core = k8s.CoreV1Api(self.api_client)
        self.apps = k8s.AppsV1Api(self.api_client)
        self.custom = k8s.CustomObjectsApi(self.api_client)
        self.timeout = request_timeout_s
        self.clock, self.sleep = clock, sleep
        #: how many times a watch had to relist after 410 Gone (the tests read it)
        self.relists = 0

    # -- error translation ---------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ApiException as exc:
            raise self._translate(what, exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TargetUnreachable(f"cluster {self.target.name} unreachable during {what}: "
                                    f"{type(exc).__name__}: {exc}") from exc

    def _translate(self, what: str, exc: ApiException) -> Inconclusive:
        status = int(exc.status or 0)
        msg = f"cluster {self.target.name}: {what}: HTTP {status} {_status_message(exc)}"
        if status in (401, 403):
            return TargetUnreachable(f"{msg} (credentials refused or not allowed by RBAC)")
        if status == 0 or status >= 500:
            return TargetUnreachable(msg)
        if status == 404:
            return KubeNotFound(msg)
        if status == 409:
            return KubeConflict(msg)
        if status == 410:
            return KubeGone(msg)
        if status == 429:
            return KubeTooManyRequests(msg, _retry_after(exc))
        return Inconclusive(msg)

    # -- reads ---------------------------------------------------------------------------------

    def ping(self) -> str:
        """The API server's version; TargetUnreachable unless it answers."""
        info = self._call("version", lambda: k8s.VersionApi(self.api_client).get_code(
            _request_timeout=self.timeout))
        return str(info.git_version)

    def nodes(self, selector: str | None = None) -> list[NodeInfo]:
        lst = self._call("list nodes", lambda: self.core.list_node(
            label_selector=selector, _request_timeout=self.timeout))
        return [node_info(n, self.target.gpu_resource) for n in lst.items]

    def node(self, name: str) -> NodeInfo:
        n = self._call(f"read node {name}", lambda: self.core.read_node(
            name, _request_timeout=self.timeout))
        return node_info(n, self.target.gpu_resource)

    def gpu_nodes(self) -> list[NodeInfo]:
        """The GPU nodes: those matching the inventory's selector, else every node with
        allocatable GPUs."""
        sel = self.target.gpu_node_selector
        found = self.nodes(sel)
        return found if sel else [n for n in found if n.gpus > 0]

    def node_conditions(self, name: str) -> dict[str, Condition]:
        return self.node(name).conditions

    def pods(self, namespace: str | None = None, *, node: str | None = None,
             selector: str | None = None) -> list[PodInfo]:
        fs = f"spec.nodeName={node}" if node else None
        what = f"list pods{' on ' + node if node else ''}"
        if namespace is None:
            lst = self._call(what, lambda: self.core.list_pod_for_all_namespaces(
                field_selector=fs, label_selector=selector, _request_timeout=self.timeout))
        else:
            lst = self._call(what, lambda: self.core.list_namespaced_pod(
                namespace, field_selector=fs, label_selector=selector,
                _request_timeout=self.timeout))
        return [pod_info(p, self.target.gpu_resource) for p in lst.items]

    def replicas(self, kind: str, namespace: str, name: str) -> int:
        read = (self.apps.read_namespaced_deployment_scale if kind == "Deployment"
                else self.apps.read_namespaced_stateful_set_scale)
        s: Any = self._call(f"read {kind} {namespace}/{name} scale", lambda: read(
            name, namespace, _request_timeout=self.timeout))
        return int(s.spec.replicas or 0)

    def rollout_status(self, namespace: str, name: str) -> RolloutStatus:
        d = self._call(f"read deployment {namespace}/{name}", lambda: (
            self.apps.read_namespaced_deployment(name, namespace, _request_timeout=self.timeout)))
        return rollout_of(d)

    def inference_service_ready(self, namespace: str, name: str) -> tuple[bool, str]:
        """KServe's own verdict: the InferenceService's Ready condition, and its message."""
        group, version, plural = KSERVE
        obj: Any = self._call(f"read InferenceService {namespace}/{name}", lambda: (
            self.custom.get_namespaced_custom_object(group, version, namespace, plural, name,
                                                     _request_timeout=self.timeout)))
        for c in (obj.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready":
                return c.get("status") == "True", str(c.get("message") or c.get("reason") or "")
        return False, "no Ready condition yet"

    # -- writes --------------------------------------------------------------------------------

    def _patch_node(self, name: str, body: dict[str, Any], what: str) -> None:
        self._call(what, lambda: self.core.patch_node(
            name, body, _content_type=MERGE_PATCH, _request_timeout=self.timeout))

    def cordon(self, name: str) -> None:
        self._patch_node(name, {"spec": {"unschedulable": True}}, f"cordon {name}")

    def uncordon(self, name: str) -> None:
        self._patch_node(name, {"spec": {"unschedulable": None}}, f"uncordon {name}")

    def _edit_taints(self, name: str, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
                     what: str, attempts: int = 5) -> None:
        """Read-modify-write of the taint list, guarded by resourceVersion (a taint manager or
        another driller may change it meanwhile: re-read and try again on 409)."""
        for _ in range(attempts):
            n: Any = self._call(f"read node {name}", lambda: self.core.read_node(
                name, _request_timeout=self.timeout))
            current = [{"key": t.key, "effect": t.effect,
                        **({"value": t.value} if t.value is not None else {})}
                       for t in (n.spec.taints or [])]
            body = {"metadata": {"resourceVersion": n.metadata.resource_version},
                    "spec": {"taints": edit(current) or None}}
            try:
                self._patch_node(name, body, what)
                return
            except KubeConflict:
                continue
        raise Inconclusive(f"cluster {self.target.name}: {what}: the node kept changing "
                           f"({attempts} conflicts)")

    def add_taint(self, name: str, taint: Taint) -> None:
        entry = {"key": taint.key, "effect": taint.effect,
                 **({"value": taint.value} if taint.value is not None else {})}
        self._edit_taints(name, lambda ts: [t for t in ts if (t["key"], t["effect"]) !=
                                            (taint.key, taint.effect)] + [entry],
                          f"taint {name} {taint.key}:{taint.effect}")

    def remove_taint(self, name: str, key: str) -> None:
        self._edit_taints(name, lambda ts: [t for t in ts if t["key"] != key],
                          f"untaint {name} {key}")

    def set_node_condition(self, name: str, cond: Condition) -> None:
        """Write one condition into the node's status, as a node health monitor does (a
        strategic merge patch: the other conditions, the kubelet's, are left alone)."""
        entry: dict[str, Any] = {"type": cond.type, "status": cond.status,
                                 "lastHeartbeatTime": _now(), "lastTransitionTime": _now()}
        if cond.reason:
            entry["reason"] = cond.reason
        if cond.message:
            entry["message"] = cond.message
        self._call(f"set condition {cond.type} on {name}", lambda: self.core.patch_node_status(
            name, {"status": {"conditions": [entry]}}, _content_type=STRATEGIC_PATCH,
            _request_timeout=self.timeout))

    def clear_node_condition(self, name: str, cond_type: str) -> None:
        self._call(f"clear condition {cond_type} on {name}", lambda: self.core.patch_node_status(
            name, {"status": {"conditions": [{"type": cond_type, "$patch": "delete"}]}},
            _content_type=STRATEGIC_PATCH, _request_timeout=self.timeout))

    def kubelet(self, node: str, *, running: bool, timeout_s: float = 60.0) -> None:
        """Stop or start the node's kubelet with the inventory's command (the notready
        variant): the node stops reporting, or reports again."""
        template = self.target.kubelet_start if running else self.target.kubelet_stop
        if not template:
            raise Inconclusive(f"cluster {self.target.name}: the inventory gives no "
                               f"kubelet_stop/kubelet_start command: cannot make a node stop "
                               f"reporting")
        argv = [part.replace("{node}", node) for part in template]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TargetUnreachable(f"{' '.join(argv)}: {exc}") from exc
        if done.returncode != 0:
            raise TargetUnreachable(f"{' '.join(argv)} exited {done.returncode}: "
                                    f"{(done.stderr or done.stdout).strip()[-300:]}")

    def ready_endpoints(self, namespace: str, service: str) -> int:
        """How many ready addresses the Service's Endpoints list (what traffic can reach)."""
        ep: Any = self._call(f"read endpoints {namespace}/{service}", lambda: (
            self.core.read_namespaced_endpoints(service, namespace,
                                                _request_timeout=self.timeout)))
        return sum(len(s.addresses or []) for s in (ep.subsets or []))

    def delete_pod(self, namespace: str, name: str, grace_s: int | None = None) -> None:
        self._call(f"delete pod {namespace}/{name}", lambda: self.core.delete_namespaced_pod(
            name, namespace, grace_period_seconds=grace_s, _request_timeout=self.timeout))

    def evict(self, namespace: str, name: str) -> None:
        """One eviction through the Eviction API (policy/v1): honours disruption budgets."""
        body = k8s.V1Eviction(api_version="policy/v1", kind="Eviction",
                              metadata=k8s.V1ObjectMeta(name=name, namespace=namespace))
        self._call(f"evict pod {namespace}/{name}", lambda: (
            self.core.create_namespaced_pod_eviction(name, namespace, body,
                                                     _request_timeout=self.timeout)))

    def scale(self, kind: str, namespace: str, name: str, replicas: int) -> None:
        patch = (self.apps.patch_namespaced_deployment_scale if kind == "Deployment"
                 else self.apps.patch_namespaced_stateful_set_scale)
        self._call(f"scale {kind} {namespace}/{name} to {replicas}", lambda: patch(
            name, namespace, {"spec": {"replicas": replicas}}, _content_type=MERGE_PATCH,
            _request_timeout=self.timeout))

    def drain(self, node: str, *, namespaces: Iterable[str], deadline_s: float,
              backoff_s: float = 0.5, max_backoff_s: float = 5.0) -> DrainResult:
        """Cordon, then evict every pod on the node. DaemonSet pods are skipped (as kubectl
        drain --ignore-daemonsets does). A pod outside ``namespaces`` refuses the whole drain
        before anything changes. A 429 is retried with exponential backoff (or the server's
        Retry-After) until the deadline; what is still refused then is returned in
        ``blocked``, with the API's reason: a finding, never forced."""
        allowed = set(namespaces)
        pods = [p for p in self.pods(node=node) if not p.deleting]
        foreign = [p.key for p in pods if p.namespace not in allowed
                   and p.owner_kind != "DaemonSet"]
        if foreign:
            raise GuardRefused(f"node {node} runs pods outside the drill-safe namespaces "
                               f"({', '.join(sorted(allowed))}): {', '.join(foreign)}")
        self.cordon(node)
        result = DrainResult(node, skipped=[p.key for p in pods if p.owner_kind == "DaemonSet"])
        pending = [p for p in pods if p.owner_kind != "DaemonSet"]
        end = self.clock() + deadline_s
        delay = backoff_s
        while pending:
            refused: list[PodInfo] = []
            for p in pending:
                try:
                    self.evict(p.namespace, p.name)
                    result.evicted.append(p.key)
                    result.blocked.pop(p.key, None)
                except KubeNotFound:
                    result.evicted.append(p.key)  # gone already: nothing left to move
                except KubeTooManyRequests as exc:
                    result.blocked[p.key] = str(exc)
                    refused.append(p)
                    if exc.retry_after_s:
                        delay = max(delay, exc.retry_after_s)
            pending = refused
            if not pending or self.clock() + delay > end:
                break
            result.retries += 1
            self.sleep(delay)
            delay = min(delay * 2, max_backoff_s)
        return result

    # -- waits: watches from a list's resourceVersion --------------------------------------------

    def watch_until(self, what: str, list_fn: Callable[..., Any],
                    done: Callable[[dict[str, Any]], bool], timeout_s: float, *,
                    on_event: Callable[[str, Any], None] | None = None,
                    **kwargs: Any) -> bool:
        """List, then watch from the list's resourceVersion, keeping a cache of the objects by
        namespace/name; True as soon as ``done(cache)`` holds, False at the deadline. A 410
        Gone (the watch fell behind the server's history) lists again and resumes; what changed
        in the gap is handed to ``on_event`` as the events it missed, as an informer does (an
        object gone from the new list as DELETED, with its last state known)."""
        end = self.clock() + timeout_s
        cache: dict[str, Any] | None = None
        while True:
            lst = self._call(what, lambda: list_fn(_request_timeout=self.timeout, **kwargs))
            fresh = {_obj_key(o): o for o in lst.items}
            if cache is not None and on_event is not None:
                _replay_gap(cache, fresh, on_event)
            cache = fresh
            if done(cache):
                return True
            rv = lst.metadata.resource_version
            try:
                while (left := end - self.clock()) > 0:
                    rv = self._watch_once(what, list_fn, rv, left, cache, done, on_event, kwargs)
                    if rv is None:
                        return True
                return False
            except KubeGone:
                self.relists += 1

    def _watch_once(self, what: str, list_fn: Callable[..., Any], rv: str, left: float,
                    cache: dict[str, Any], done: Callable[[dict[str, Any]], bool],
                    on_event: Callable[[str, Any], None] | None,
                    kwargs: dict[str, Any]) -> str | None:
        """One watch request; the resourceVersion to resume from, or None once done."""
        w = k8s_watch.Watch()
        stream = w.stream(list_fn, resource_version=rv, allow_watch_bookmarks=True,
                          timeout_seconds=max(1, int(left)), _request_timeout=left + 5,
                          **kwargs)

        def consume() -> str | None:
            for ev in stream:
                kind, obj = ev["type"], ev["object"]
                if kind == "BOOKMARK":
                    continue
                key = _obj_key(obj)
                if kind == "DELETED":
                    cache.pop(key, None)
                else:
                    cache[key] = obj
                if on_event is not None:
                    on_event(kind, obj)
                if done(cache):
                    w.stop()
                    return None
            return str(w.resource_version or rv)

        return self._call(f"watch {what}", consume)

    def wait_rollout(self, namespace: str, name: str, timeout_s: float) -> RolloutStatus:
        """Watch the Deployment until its rollout is complete (as kubectl rollout status
        decides); its last status either way."""
        last: list[RolloutStatus] = []

        def done(cache: dict[str, Any]) -> bool:
            d = cache.get(f"{namespace}/{name}")
            if d is None:
                return False
            last[:] = [rollout_of(d)]
            return last[0].done

        self.watch_until(f"deployment {namespace}/{name}", self.apps.list_namespaced_deployment,
                         done, timeout_s, namespace=namespace,
                         field_selector=f"metadata.name={name}")
        return last[0] if last else self.rollout_status(namespace, name)

    def wait_node(self, name: str, pred: Callable[[NodeInfo], bool], timeout_s: float) -> bool:
        """Watch one node until ``pred`` holds (Ready again, NotReady, a condition set...)."""
        return self.watch_until(
            f"node {name}", self.core.list_node,
            lambda c: name in c and pred(node_info(c[name], self.target.gpu_resource)),
            timeout_s, field_selector=f"metadata.name={name}")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _obj_key(o: Any) -> str:
    meta = o.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else str(meta.name)


def _status_message(exc: ApiException) -> str:
    import json

    try:
        doc = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return str(exc.reason or "")
    if isinstance(doc, dict) and doc.get("message"):
        return f"{doc.get('reason', '')}: {doc['message']}".strip(": ")
    return str(exc.reason or "")


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    raw = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _replay_gap(old: dict[str, Any], new: dict[str, Any],
                on_event: Callable[[str, Any], None]) -> None:
    """The events a watch missed between two lists: objects that appeared (ADDED), changed
    (MODIFIED, by resourceVersion) or disappeared (DELETED, with the last state seen)."""
    for key, obj in new.items():
        before = old.get(key)
        if before is None:
            on_event("ADDED", obj)
        elif _rv(before) != _rv(obj):
            on_event("MODIFIED", obj)
    for key, obj in old.items():
        if key not in new:
            on_event("DELETED", obj)


def _rv(obj: Any) -> str | None:
    rv: str | None = obj.metadata.resource_version
    return rv
