"""Check lab Kubernetes objects against the official schemas.

The ``kubernetes`` client's model classes are generated from the Kubernetes OpenAPI document as
pydantic models that forbid unknown fields and require the required ones, so validating a JSON
object with ``V1Pod.model_validate`` fails on any field the real API would not have. The lab's
API server checks every object it stores with :func:`validate`, and the contract tests check
every response with it. KServe's InferenceService has no model in the client: its metadata is
checked as an ObjectMeta and its status conditions as KServe documents them.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import models

#: resource (URL plural) -> the generated model of one object
MODELS = {
    "nodes": "V1Node", "pods": "V1Pod", "deployments": "V1Deployment",
    "statefulsets": "V1StatefulSet", "leases": "V1Lease",
    "poddisruptionbudgets": "V1PodDisruptionBudget", "scale": "V1Scale",
    "eviction": "V1Eviction", "status": "V1Status", "services": "V1Service",
    "endpoints": "V1Endpoints",
}
LISTS = {"nodes": "V1NodeList", "pods": "V1PodList", "deployments": "V1DeploymentList",
         "statefulsets": "V1StatefulSetList", "leases": "V1LeaseList",
         "poddisruptionbudgets": "V1PodDisruptionBudgetList", "services": "V1ServiceList",
         "endpoints": "V1EndpointsList"}
_ISVC_TOP = {"apiVersion", "kind", "metadata", "spec", "status"}
_ISVC_CONDITION = {"type", "status", "reason", "message", "lastTransitionTime", "severity"}


class SchemaError(ValueError):
    """The object does not match its official schema."""


def validate(resource: str, obj: dict[str, Any], *, as_list: bool = False) -> None:
    """Raise SchemaError unless ``obj`` is a valid object (or list) of ``resource``."""
    if resource == "inferenceservices":
        for item in obj.get("items", []) if as_list else [obj]:
            _validate_isvc(item)
        return
    name = (LISTS if as_list else MODELS).get(resource)
    if name is None:
        raise SchemaError(f"no schema known for {resource}")
    model: Any = getattr(models, name)
    try:
        model.model_validate(obj)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise SchemaError(f"{name}: {exc}") from exc


def _validate_isvc(obj: dict[str, Any]) -> None:
    extra = set(obj) - _ISVC_TOP
    if extra or obj.get("kind") != "InferenceService" or \
            obj.get("apiVersion") != "serving.kserve.io/v1beta1":
        raise SchemaError(f"InferenceService: bad top level (extra fields {sorted(extra)}, "
                          f"kind {obj.get('kind')!r}, apiVersion {obj.get('apiVersion')!r})")
    try:
        models.V1ObjectMeta.model_validate(obj.get("metadata") or {})
    except ValueError as exc:
        raise SchemaError(f"InferenceService metadata: {exc}") from exc
    for c in (obj.get("status") or {}).get("conditions", []):
        if set(c) - _ISVC_CONDITION or c.get("status") not in ("True", "False", "Unknown"):
            raise SchemaError(f"InferenceService condition {c!r} is not a KServe condition")
