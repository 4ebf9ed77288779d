"""Checks recorded Kubernetes API calls against deploy/rbac.yaml (the adapter's least privilege).

Each (HTTP verb, path) the lab API server recorded is turned into what the real authorizer sees
(API group, resource, subresource, namespace, RBAC verb: list/watch/get/create/update/patch/
delete) and must be allowed by the ClusterRole (any namespace) or by the Role (its namespace).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

RBAC = Path(__file__).resolve().parent.parent / "deploy" / "rbac.yaml"
_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)"
                   r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>[a-z]+)"
                   r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>[a-z]+))?$")
#: paths every authenticated identity may read (system:public-info-viewer), and the lab's own
PUBLIC = ("/version", "/_lab/")


def request_attributes(method: str, raw: str) -> tuple[str, str, str | None, str] | None:
    """(group, resource[/subresource], namespace, verb), or None for a public path."""
    url = urlparse(raw)
    if url.path.startswith(PUBLIC):
        return None
    m = _PATH.match(url.path)
    if m is None:
        raise AssertionError(f"unrecognised API path {url.path}")
    q = parse_qs(url.query)
    collection = m["name"] is None
    verb = {"GET": ("watch" if q.get("watch", [""])[0] in ("true", "1") else "list")
            if collection else "get", "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete"}[method]
    resource = m["res"] + (f"/{m['sub']}" if m["sub"] else "")
    return (m["group"] or "", resource, m["ns"], verb)


def load_rules() -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace or None for cluster-wide, rule) for every rule in the file."""
    out = []
    for doc in yaml.safe_load_all(RBAC.read_text()):
        if doc and doc["kind"] in ("ClusterRole", "Role"):
            ns = doc["metadata"].get("namespace") if doc["kind"] == "Role" else None
            out.extend((ns, rule) for rule in doc["rules"])
    return out


def allowed(attrs: tuple[str, str, str | None, str],
            rules: list[tuple[str | None, dict[str, Any]]]) -> bool:
    group, resource, ns, verb = attrs
    for scope, rule in rules:
        if scope is not None and scope != ns:
            continue
        if group in rule["apiGroups"] and resource in rule["resources"] \
                and verb in rule["verbs"]:
            return True
    return False


def outside_role(calls: list[tuple[str, str]]) -> list[str]:
    """Every recorded call the role does not allow (empty: least privilege holds)."""
    rules = load_rules()
    bad = []
    for method, path in calls:
        attrs = request_attributes(method, path)
        if attrs is not None and not allowed(attrs, rules):
            bad.append(f"{method} {path} -> {attrs}")
    return sorted(set(bad))
