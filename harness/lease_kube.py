"""Drill leases kept in a Kubernetes cluster as ``coordination.k8s.io/v1`` Lease objects.

A drill that touches a cluster (its nodes, its workloads) keeps its lease in that cluster, where
every driller of the site and every operator's ``kubectl get leases`` sees it. The lease record
(JSON, see harness/lease.py) lives in an annotation; the object's resourceVersion is the
compare-and-swap tag, so create, replace and delete are race-free on the API server itself
(409 Conflict when someone else got there first). Leases go into the first drill-safe namespace
the inventory names for the cluster.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from kubernetes import client as k8s

from harness.targets.kube import KubeCluster, KubeConflict, KubeNotFound

#: label that marks drillbook's leases, so they can be listed among the cluster's own
LABEL = "drillbook.io/lease"
#: annotations holding the lease's key (its resource name) and its record
KEY_ANNOTATION = "drillbook.io/key"
DATA_ANNOTATION = "drillbook.io/record"


def lease_name(key: str) -> str:
    """A DNS-1123 name for a lease key: readable where possible, unique by a hash."""
    slug = re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")[:40].strip("-")
    return f"drillbook-{slug}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


class KubeLeaseStore:
    """The lease store contract (harness.lease_stores.LeaseStore) on Kubernetes Leases."""

    def __init__(self, cluster: KubeCluster) -> None:
        self.cluster = cluster
        namespaces = cluster.target.namespaces
        self.namespace = namespaces[0] if namespaces else "default"
        self.api = k8s.CoordinationV1Api(cluster.api_client)

    @property
    def where(self) -> str:
        return f"Leases in namespace {self.namespace} on cluster {self.cluster.target.name}"

    def _body(self, key: str, data: bytes, tag: str | None = None) -> Any:
        meta = k8s.V1ObjectMeta(name=lease_name(key), namespace=self.namespace,
                                labels={LABEL: "true"},
                                annotations={KEY_ANNOTATION: key,
                                             DATA_ANNOTATION: data.decode()},
                                resource_version=tag)
        return k8s.V1Lease(metadata=meta, spec=k8s.V1LeaseSpec(holder_identity="drillbook"))

    def create(self, key: str, data: bytes) -> str | None:
        try:
            made: Any = self.cluster._call("create lease", lambda: self.api.create_namespaced_lease(
                self.namespace, self._body(key, data)))
        except KubeConflict:
            return None
        return str(made.metadata.resource_version)

    def get(self, key: str) -> tuple[bytes, str] | None:
        try:
            got: Any = self.cluster._call("read lease", lambda: self.api.read_namespaced_lease(
                lease_name(key), self.namespace))
        except KubeNotFound:
            return None
        notes = got.metadata.annotations or {}
        return notes.get(DATA_ANNOTATION, "").encode(), str(got.metadata.resource_version)

    def replace(self, key: str, data: bytes, tag: str) -> str | None:
        try:
            made: Any = self.cluster._call("replace lease", lambda: self.api.replace_namespaced_lease(
                lease_name(key), self.namespace, self._body(key, data, tag)))
        except (KubeConflict, KubeNotFound):
            return None
        return str(made.metadata.resource_version)

    def remove(self, key: str, tag: str) -> bool:
        options = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(resource_version=tag))
        try:
            self.cluster._call("delete lease", lambda: self.api.delete_namespaced_lease(
                lease_name(key), self.namespace, body=options))
        except (KubeConflict, KubeNotFound):
            return False
        return True

    def list_keys(self) -> list[str]:
        found: Any = self.cluster._call("list leases", lambda: self.api.list_namespaced_lease(
            self.namespace, label_selector=f"{LABEL}=true"))
        keys = [(item.metadata.annotations or {}).get(KEY_ANNOTATION) for item in found.items]
        return sorted(k for k in keys if k)

    def hold(self, key: str) -> bool:
        return True  # liveness comes from renewal and expiry, as for leases in S3

    def unhold(self, key: str) -> None:
        return None

    def holder_alive(self, key: str) -> bool | None:
        return None
