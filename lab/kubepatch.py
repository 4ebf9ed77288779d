"""Patch and selector semantics of the lab's Kubernetes API.

JSON merge patch (RFC 7386), JSON patch (RFC 6902), and the part of strategic merge patch the
drills rely on: lists with a merge key (a node's ``status.conditions`` by ``type``) are merged
item by item, and ``$patch: delete`` removes one item, as the real API server does; other lists
are replaced. Label and field selectors as the API parses them (equality, inequality, existence).
"""

from __future__ import annotations

import copy
from typing import Any

from lab.kubeerrors import ApiError

Obj = dict[str, Any]

#: list fields merged by key under strategic merge patch: field name -> merge key
MERGE_KEYS = {"conditions": "type", "containers": "name", "addresses": "type"}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(doc: Obj, ops: list[Obj]) -> Obj:
    """RFC 6902 add/remove/replace/test."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        kind = op["op"]
        if kind == "test":
            cur = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if cur != op["value"]:
                raise ApiError(422, "Invalid", f"test failed at {op['path']}")
        elif kind == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        elif isinstance(parent, list):
            idx = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(idx, op["value"])
            else:
                parent[idx] = op["value"]
        else:
            parent[last] = op["value"]
    return doc


def match_labels(labels: dict[str, str], selector: str | None) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term.strip() not in labels:
            return False
    return True


def match_fields(obj: Obj, selector: str | None) -> bool:
    for term in filter(None, (selector or "").split(",")):
        k, v = term.replace("==", "=").split("=", 1)
        cur: Any = obj
        for part in k.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if (cur or "") != v:
            return False
    return True


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge patch, for the lists whose merge key is known (:data:`MERGE_KEYS`)."""
    if isinstance(patch, list) and isinstance(target, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out = [copy.deepcopy(x) for x in target]
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise ApiError(422, "Invalid", f"{field}: an item without its merge key {key}")
            idx = next((i for i, x in enumerate(out) if isinstance(x, dict)
                        and x.get(key) == item[key]), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    del out[idx]
            elif idx is None:
                out.append(copy.deepcopy(item))
            else:
                out[idx] = strategic_merge(out[idx], item)
        return out
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out_d = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out_d.pop(k, None)
        else:
            out_d[k] = strategic_merge(out_d.get(k), v, k)
    return out_d
