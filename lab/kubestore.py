"""The lab cluster's state: objects, resourceVersions, the watch history and the controllers.

One lock guards everything. Every change bumps a cluster-wide resourceVersion and appends a
watch event to a bounded history; a watch from a resourceVersion older than the history gets
410 Gone, as from a real API server after compaction. :meth:`KubeStore.reconcile` plays the
control plane's part in the cases drills use: the taint manager evicts pods from NoExecute
tainted or NotReady nodes, the Deployment controller replaces lost pods, the scheduler binds
pending pods to Ready, schedulable nodes with free GPUs, the kubelet marks a bound pod Ready
after a delay, and InferenceService readiness follows its predictor Deployment.
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

from lab.kubeerrors import ApiError
from lab.kubepatch import match_fields, match_labels
from lab.kubepods import (
    GPU,
    DelayRuntime,
    Obj,
    PodRuntime,
    gpus,
    has_taint,
    node_ready,
    now_iso,
    tolerated_for,
    tolerates,
)
from lab.kubeschema import validate
from lab.kubeservice import POD_PORT, endpoints_for

KINDS = {"nodes": ("v1", "Node"), "pods": ("v1", "Pod"), "services": ("v1", "Service"),
         "endpoints": ("v1", "Endpoints"), "deployments": ("apps/v1", "Deployment"),
         "statefulsets": ("apps/v1", "StatefulSet"),
         "poddisruptionbudgets": ("policy/v1", "PodDisruptionBudget"),
         "leases": ("coordination.k8s.io/v1", "Lease"),
         "inferenceservices": ("serving.kserve.io/v1beta1", "InferenceService")}
#: the node lifecycle controller's taints (and the tolerations DefaultTolerationSeconds adds)
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


class KubeStore:
    """Every object of the lab cluster, keyed by resource then ``namespace/name``."""

    def __init__(self, *, ready_delay_s: float = 0.3, evict_grace_s: float = 0.1,
                 notready_after_s: float = 1.0, toleration_s: int = 2, history: int = 2000,
                 runtime: PodRuntime | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cond = threading.Condition()
        self.rv = 1
        self.objects: dict[str, dict[str, Obj]] = {}
        self.history: deque[tuple[int, str, str, Obj]] = deque(maxlen=history)
        self.oldest_rv = 1
        self.ready_delay_s, self.evict_grace_s = ready_delay_s, evict_grace_s
        self.notready_after_s = notready_after_s
        #: the tolerationSeconds DefaultTolerationSeconds gives new pods for not-ready and
        #: unreachable (300 on a real cluster; short in the lab)
        self.toleration_s = toleration_s
        self.clock = clock
        self.runtime: PodRuntime = runtime or DelayRuntime(ready_delay_s, clock)
        #: node name -> time of its last heartbeat (None: its kubelet stopped reporting)
        self.heartbeat: dict[str, float | None] = {}
        self._bound_at: dict[str, float] = {}
        self._deleting_at: dict[str, float] = {}
        #: (node, taint key) -> when the taint manager first saw that NoExecute taint
        self._taint_at: dict[tuple[str, str], float] = {}

    # -- primitives (caller holds the lock) --------------------------------------------------

    def _emit(self, resource: str, kind: str, obj: Obj) -> None:
        if len(self.history) == self.history.maxlen:
            self.oldest_rv = self.history[0][0] + 1
        self.history.append((self.rv, resource, kind, copy.deepcopy(obj)))
        self.cond.notify_all()

    def _store(self, resource: str, obj: Obj, kind: str) -> Obj:
        validate(resource, obj)
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects.setdefault(resource, {})[_key(obj)] = obj
        self._emit(resource, kind, obj)
        return obj

    def validate_request(self, kind: str, body: Obj) -> None:
        """A request body (an Eviction, a Scale) must match its schema too."""
        validate(kind, body)

    def compact(self) -> None:
        """Forget the watch history (what etcd compaction does): older watches get 410."""
        with self.cond:
            self.history.clear()
            self.oldest_rv = self.rv + 1

    def get(self, resource: str, ns: str | None, name: str) -> Obj:
        obj = self.objects.get(resource, {}).get(f"{ns}/{name}" if ns else name)
        if obj is None:
            raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
        return obj

    def select(self, resource: str, ns: str | None, labels: str | None,
             fields: str | None) -> list[Obj]:
        return [o for o in self.objects.get(resource, {}).values()
                if (ns is None or o["metadata"].get("namespace") == ns)
                and match_labels(o["metadata"].get("labels") or {}, labels)
                and match_fields(o, fields)]

    def create(self, resource: str, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if _key(obj) in self.objects.get(resource, {}):
            raise ApiError(409, "AlreadyExists", f'{resource} "{meta["name"]}" already exists')
        meta.update(uid=secrets.token_hex(16), creationTimestamp=now_iso())
        if resource in KINDS:  # the API server serves every object with its kind
            obj["apiVersion"], obj["kind"] = KINDS[resource]
        if resource == "pods":
            self._default_tolerations(obj)
        if resource in _GENERATIONS:
            meta["generation"] = 1
        return self._store(resource, obj, "ADDED")

    def replace(self, resource: str, obj: Obj, *, expect_rv: str | None = None) -> Obj:
        old = self.get(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if expect_rv is not None and expect_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource} '
                           f'"{obj["metadata"]["name"]}": the object has been modified; '
                           f'please apply your changes to the latest version and try again')
        if json.dumps(old, sort_keys=True) == json.dumps(obj, sort_keys=True):
            return old
        if resource in _GENERATIONS and old.get("spec") != obj.get("spec"):
            obj["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        return self._store(resource, obj, "MODIFIED")

    def delete(self, resource: str, ns: str | None, name: str,
               expect_rv: str | None = None) -> Obj:
        obj = self.get(resource, ns, name)
        if expect_rv is not None and obj["metadata"].get("resourceVersion") != expect_rv:
            # DeleteOptions.preconditions, as the API server checks them
            raise ApiError(409, "Conflict",
                           f'Operation cannot be fulfilled on {resource} "{name}": the '
                           f'ResourceVersion in the precondition ({expect_rv}) does not match '
                           f'the ResourceVersion in record '
                           f'({obj["metadata"].get("resourceVersion")})')
        if resource == "pods":
            if obj["metadata"].get("deletionTimestamp") is None:
                self._mark_deleting(obj)
            return obj
        del self.objects[resource][_key(obj)]
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._emit(resource, "DELETED", obj)
        return obj

    def _default_tolerations(self, pod: Obj) -> None:
        """What the DefaultTolerationSeconds admission plugin adds to every pod."""
        tols = pod.setdefault("spec", {}).setdefault("tolerations", [])
        for key in (NOT_READY, UNREACHABLE):
            if not any(t.get("key") == key and t.get("effect") in (None, "NoExecute")
                       for t in tols):
                tols.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": self.toleration_s})

    def _mark_deleting(self, pod: Obj) -> None:
        pod = copy.deepcopy(pod)
        pod["metadata"]["deletionTimestamp"] = now_iso()
        pod["metadata"]["deletionGracePeriodSeconds"] = 0
        self._deleting_at[_key(pod)] = self.clock()
        self.replace("pods", pod)

    # -- eviction (policy/v1) ---------------------------------------------------------------

    def evict(self, ns: str, name: str) -> None:
        pod = self.get("pods", ns, name)
        for pdb in self.select("poddisruptionbudgets", ns, None, None):
            sel = (pdb["spec"].get("selector") or {}).get("matchLabels") or {}
            if not all(pod["metadata"].get("labels", {}).get(k) == v for k, v in sel.items()):
                continue
            status = pdb.get("status") or {}
            if int(status.get("observedGeneration", 0)) < int(pdb["metadata"].get(
                    "generation", 1)):
                # as the API server: a budget changed since the disruption controller last
                # looked cannot allow anything yet
                raise ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate "
                               f"the pod's disruption budget {pdb['metadata']['name']}: it is "
                               "still being processed by the server.")
            if int(status.get("disruptionsAllowed", 0)) < 1:
                raise ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate "
                               f"the pod's disruption budget {pdb['metadata']['name']}.")
        self._mark_deleting(pod)

    # -- controllers ----------------------------------------------------------------------------

    def reconcile(self) -> None:
        with self.cond:
            t = self.clock()
            self._node_lifecycle(t)
            self._taint_manager(t)
            self._finish_deletions(t)
            for d in list(self.objects.get("deployments", {}).values()):
                self._deployment(d)
            self._schedule(t)
            self._kubelet(t)
            for d in list(self.objects.get("deployments", {}).values()):
                self._deployment_status(d)
            for pdb in list(self.objects.get("poddisruptionbudgets", {}).values()):
                self._pdb_status(pdb)
            for isvc in list(self.objects.get("inferenceservices", {}).values()):
                self._isvc_status(isvc)
            for svc in list(self.objects.get("services", {}).values()):
                self._endpoints(svc)

    def _node_lifecycle(self, t: float) -> None:
        """The node lifecycle controller: a node whose kubelet missed its heartbeats for
        ``notready_after_s`` turns Ready=Unknown, gets the unreachable NoSchedule and
        NoExecute taints, and its pods are marked not Ready (so they leave the endpoints);
        when it reports again, the condition and the taints go."""
        for node in list(self.objects.get("nodes", {}).values()):
            name = node["metadata"]["name"]
            beat = self.heartbeat.get(name, t)
            ok = beat is not None and t - beat < self.notready_after_s
            if ok == node_ready(node) and ok == (not has_taint(node, UNREACHABLE)):
                continue
            n = copy.deepcopy(node)
            n["status"]["conditions"] = [c for c in n["status"]["conditions"]
                                         if c["type"] != "Ready"] + [{
                "type": "Ready", "status": "True" if ok else "Unknown",
                "reason": "KubeletReady" if ok else "NodeStatusUnknown",
                "message": "kubelet is posting ready status" if ok else
                "Kubelet stopped posting node status.",
                "lastHeartbeatTime": now_iso(), "lastTransitionTime": now_iso()}]
            taints = [x for x in n["spec"].get("taints") or [] if x["key"] != UNREACHABLE]
            if not ok:
                taints += [{"key": UNREACHABLE, "effect": e, "timeAdded": now_iso()}
                           for e in ("NoSchedule", "NoExecute")]
            if taints:
                n["spec"]["taints"] = taints
            else:
                n["spec"].pop("taints", None)
            self.replace("nodes", n)
            if not ok:
                for p in self.select("pods", None, None, f"spec.nodeName={name}"):
                    self._set_pod_ready(p, False)

    def _set_pod_ready(self, pod: Obj, ready: bool) -> None:
        q = copy.deepcopy(pod)
        value = "True" if ready else "False"
        conds = q["status"].setdefault("conditions", [])
        if not any(c["type"] == "Ready" for c in conds) and ready:
            return
        for c in conds:
            if c["type"] in ("Ready", "ContainersReady") and c["status"] != value:
                c.update(status=value, lastTransitionTime=now_iso())
        self.replace("pods", q)

    def _taint_manager(self, t: float) -> None:
        """NoExecute taints: a pod that does not tolerate one is evicted at once; one that
        tolerates it for tolerationSeconds is evicted when that time has passed."""
        nodes = self.objects.get("nodes", {})
        seen: set[tuple[str, str]] = set()
        for node_name, n in nodes.items():
            for x in n["spec"].get("taints") or []:
                if x["effect"] == "NoExecute":
                    seen.add((node_name, x["key"]))
                    self._taint_at.setdefault((node_name, x["key"]), t)
        for gone in set(self._taint_at) - seen:
            del self._taint_at[gone]
        for pod in list(self.objects.get("pods", {}).values()):
            name = pod["spec"].get("nodeName") or ""
            found = nodes.get(name)
            if found is None or pod["metadata"].get("deletionTimestamp"):
                continue
            for x in found["spec"].get("taints") or []:
                if x["effect"] != "NoExecute":
                    continue
                allowed = tolerated_for(pod, x)
                if allowed is not None and t - self._taint_at[(name, x["key"])] < allowed:
                    continue
                self._mark_deleting(pod)
                break

    def _finish_deletions(self, t: float) -> None:
        """A terminating pod goes once its kubelet confirms, after the grace period; on a node
        whose kubelet stopped reporting it stays Terminating (as on a real cluster) until the
        node reports again."""
        for key, since in list(self._deleting_at.items()):
            pod = self.objects.get("pods", {}).get(key)
            node = (pod or {}).get("spec", {}).get("nodeName")
            if node and node in self.heartbeat and self.heartbeat[node] is None:
                continue
            if t - since >= self.evict_grace_s:
                del self._deleting_at[key]
                self._bound_at.pop(key, None)
                self.runtime.stop(key)
                if key in self.objects.get("pods", {}):
                    obj = self.objects["pods"].pop(key)
                    self.rv += 1
                    obj["metadata"]["resourceVersion"] = str(self.rv)
                    self._emit("pods", "DELETED", obj)

    def _owned(self, d: Obj) -> list[Obj]:
        sel = d["spec"]["selector"].get("matchLabels") or {}
        return [p for p in self.select("pods", d["metadata"]["namespace"], None, None)
                if all(p["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())
                and not p["metadata"].get("deletionTimestamp")]

    def _deployment(self, d: Obj) -> None:
        want = int(d["spec"].get("replicas", 1))
        have = self._owned(d)
        rs = f"{d['metadata']['name']}-{d['metadata']['uid'][:10]}"
        for _ in range(want - len(have)):
            tmpl = copy.deepcopy(d["spec"]["template"])
            meta = tmpl.setdefault("metadata", {})
            meta.update(name=f"{rs}-{secrets.token_hex(3)[:5]}", namespace=d["metadata"][
                "namespace"], ownerReferences=[{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                "name": rs, "uid": d["metadata"]["uid"],
                                                "controller": True}])
            tmpl["status"] = {"phase": "Pending", "conditions": []}
            self.create("pods", tmpl)
        for p in sorted(have, key=lambda p: p["metadata"]["creationTimestamp"])[want:]:
            self._mark_deleting(p)

    def _schedule(self, t: float) -> None:
        nodes = self.objects.get("nodes", {})
        pods = list(self.objects.get("pods", {}).values())
        used: dict[str, int] = {}
        for p in pods:
            if p["spec"].get("nodeName"):
                used[p["spec"]["nodeName"]] = used.get(p["spec"]["nodeName"], 0) + gpus(p)
        for p in pods:
            if p["spec"].get("nodeName") or p["metadata"].get("deletionTimestamp"):
                continue
            for name, node in sorted(nodes.items()):
                free = int(node["status"].get("allocatable", {}).get(GPU, "0")) - used.get(name, 0)
                blocked = [x for x in node["spec"].get("taints") or []
                           if x["effect"] in ("NoSchedule", "NoExecute") and not tolerates(p, x)]
                wanted = p["spec"].get("nodeSelector") or {}
                labels = node["metadata"].get("labels") or {}
                fits = all(labels.get(k) == v for k, v in wanted.items())
                if (node_ready(node) and not node["spec"].get("unschedulable") and not blocked
                        and free >= gpus(p) and fits):
                    q = copy.deepcopy(p)
                    q["spec"]["nodeName"] = name
                    q["status"]["conditions"] = [{"type": "PodScheduled", "status": "True",
                                                  "lastTransitionTime": now_iso()}]
                    used[name] = used.get(name, 0) + gpus(p)
                    self._bound_at[_key(q)] = t
                    self.replace("pods", q)
                    break

    def _kubelet(self, t: float) -> None:
        """Each reporting node's kubelet: start a bound pod's container, and mark the pod
        Ready when its readiness probe (the runtime) says so."""
        for p in list(self.objects.get("pods", {}).values()):
            key = _key(p)
            node = p["spec"].get("nodeName")
            if (key not in self._bound_at or p["metadata"].get("deletionTimestamp")
                    or (node in self.heartbeat and self.heartbeat[node] is None)):
                continue
            conds = {c["type"] for c in p["status"]["conditions"] if c["status"] == "True"}
            if "Ready" in conds:
                continue
            if p["status"].get("phase") == "Pending":
                port = self.runtime.start(key, p)
                q = copy.deepcopy(p)
                q["status"].update(phase="Running", startTime=now_iso(), hostIP="127.0.0.1",
                                   podIP="127.0.0.1", containerStatuses=[
                    {"name": c["name"], "image": c.get("image", ""), "imageID": "",
                     "ready": False, "restartCount": 0, "started": True,
                     "state": {"running": {"startedAt": now_iso()}}}
                    for c in q["spec"]["containers"]])
                if port is not None:
                    q["metadata"].setdefault("annotations", {})[POD_PORT] = str(port)
                self.replace("pods", q)
                continue
            if not self.runtime.ready(key):
                continue
            q = copy.deepcopy(p)
            for cs in q["status"].get("containerStatuses") or []:
                cs["ready"] = True
            q["status"]["conditions"] = [c for c in q["status"]["conditions"]
                                         if c["type"] not in ("Ready", "ContainersReady")]
            if not any(c["type"] == "Initialized" for c in q["status"]["conditions"]):
                q["status"]["conditions"].append(
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now_iso()})
            q["status"]["conditions"] += [
                {"type": k, "status": "True", "lastTransitionTime": now_iso()}
                for k in ("ContainersReady", "Ready")]
            self.replace("pods", q)

    def _deployment_status(self, d: Obj) -> None:
        owned = self._owned(d)
        ready = sum(1 for p in owned if any(c["type"] == "Ready" and c["status"] == "True"
                                            for c in p["status"]["conditions"]))
        want = int(d["spec"].get("replicas", 1))
        q = copy.deepcopy(d)
        q["status"] = {"observedGeneration": d["metadata"]["generation"],
                       "replicas": len(owned), "updatedReplicas": len(owned),
                       "readyReplicas": ready, "availableReplicas": ready,
                       "unavailableReplicas": max(0, want - ready),
                       "conditions": [{"type": "Available",
                                       "status": "True" if ready >= want else "False",
                                       "reason": "MinimumReplicasAvailable" if ready >= want
                                       else "MinimumReplicasUnavailable"}]}
        if q["status"] != (d.get("status") or {}):
            self.replace("deployments", q)

    def _pdb_status(self, pdb: Obj) -> None:
        sel = (pdb["spec"].get("selector") or {}).get("matchLabels") or {}
        pods = [p for p in self.select("pods", pdb["metadata"]["namespace"], None, None)
                if all(p["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())
                and not p["metadata"].get("deletionTimestamp")]
        healthy = sum(1 for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                             for c in p["status"]["conditions"]))
        spec = pdb["spec"]
        desired = (int(spec["minAvailable"]) if "minAvailable" in spec
                   else len(pods) - int(spec.get("maxUnavailable", 0)))
        q = copy.deepcopy(pdb)
        q["status"] = {"currentHealthy": healthy, "desiredHealthy": desired,
                       "disruptionsAllowed": max(0, healthy - desired), "expectedPods": len(pods),
                       "observedGeneration": int(pdb["metadata"].get("generation", 1))}
        if q["status"] != pdb.get("status"):
            self.replace("poddisruptionbudgets", q)

    def _endpoints(self, svc: Obj) -> None:
        want = endpoints_for(self.select("pods", svc["metadata"]["namespace"], None, None),
                             svc)
        meta = svc["metadata"]
        have = self.objects.get("endpoints", {}).get(f"{meta['namespace']}/{meta['name']}")
        if have is None:
            self.create("endpoints", want)
        elif have.get("subsets") != want["subsets"]:
            self.replace("endpoints", {**have, "subsets": want["subsets"]})

    def _isvc_status(self, isvc: Obj) -> None:
        meta = isvc["metadata"]
        d = self.objects.get("deployments", {}).get(f"{meta['namespace']}/{meta['name']}"
                                                     "-predictor")
        st = (d or {}).get("status") or {}
        ok = d is not None and st.get("availableReplicas", 0) >= int(d["spec"].get("replicas",
                                                                                    1)) > 0
        q = copy.deepcopy(isvc)
        q["status"] = {"conditions": [{"type": "Ready", "status": "True" if ok else "False",
                                       **({} if ok else {"reason": "PredictorNotReady"})}]}
        if q["status"] != isvc.get("status"):
            self.replace("inferenceservices", q)


#: resources whose spec changes bump metadata.generation (their controllers report
#: status.observedGeneration)
_GENERATIONS = ("deployments", "statefulsets", "poddisruptionbudgets")


def _key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])
