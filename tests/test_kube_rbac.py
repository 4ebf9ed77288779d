"""The RBAC role in deploy/rbac.yaml: the checker itself (the drill tests apply it to every
call their drills made: tests/test_kube_drill.py, tests/test_kube_site.py)."""

from __future__ import annotations

from kube_rbac import outside_role, request_attributes


def test_verbs_are_mapped_as_the_authorizer_does() -> None:
    assert request_attributes("GET", "/api/v1/nodes?watch=true&resourceVersion=5") == \
        ("", "nodes", None, "watch")
    assert request_attributes("GET", "/api/v1/nodes") == ("", "nodes", None, "list")
    assert request_attributes("POST", "/api/v1/namespaces/inference/pods/p/eviction") == \
        ("", "pods/eviction", "inference", "create")
    assert request_attributes("PATCH", "/apis/apps/v1/namespaces/inference/deployments/d/scale") \
        == ("apps", "deployments/scale", "inference", "patch")
    assert request_attributes("GET", "/version") is None


def test_calls_outside_the_role_are_reported() -> None:
    ok = [("PATCH", "/api/v1/nodes/gpu-0"), ("PATCH", "/api/v1/nodes/gpu-0/status"),
          ("POST", "/api/v1/namespaces/inference/pods/p/eviction"),
          ("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dgpu-0")]
    assert outside_role(ok) == []
    bad = [("DELETE", "/api/v1/nodes/gpu-0"),  # never deletes a node
           ("POST", "/api/v1/namespaces/prod/pods/p/eviction"),  # not a drill-safe namespace
           ("GET", "/api/v1/secrets"),
           ("PATCH", "/apis/apps/v1/namespaces/inference/deployments/d")]  # only via scale
    assert len(outside_role(ok + bad)) == 4
