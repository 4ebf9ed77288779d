"""JSON for plain frozen dataclasses whose field names are their JSON keys (typed sections).

:func:`encode` turns a record into JSON values; :func:`decode` reads them back strictly, from the
field's type hints: every field's key must be present, no other key may be, and each value must
have its declared type. Strictness is what makes ``decode(encode(x)) == x`` and
``encode(decode(doc)) == doc`` exact: a document that does not fit is refused, never trimmed or
padded with defaults (callers fall back to a generic record that keeps it as it is).

A field declared ``field(default=None, metadata=OMITTED_WHEN_NONE)`` may be left out of the document: it reads as None,
and None is written by leaving it out (a ``null`` written for it is refused, so the trip stays
exact).

Supported field types: ``str``, ``int``, ``float`` (an int is accepted and kept as it is),
``bool``, ``None`` in unions, ``tuple[X, ...]``, ``dict[str, X]``, ``Any`` (kept as it is), and
nested dataclasses (their own ``from_json`` when they have one).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union, get_args, get_origin

from harness.model.base import EvidenceFormatError, is_json_type

R = TypeVar("R")


_OMIT = "drillbook.omit-when-none"
#: metadata of a dataclass field (default None) that the document leaves out when it is None
OMITTED_WHEN_NONE: Mapping[str, Any] = types.MappingProxyType({_OMIT: True})


def _omittable(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get(_OMIT))


def encode_fields(record: Any) -> dict[str, Any]:
    """A dataclass's fields as a JSON object (nested values through :func:`encode`)."""
    return {f.name: encode(getattr(record, f.name)) for f in dataclasses.fields(record)
            if not (_omittable(f) and getattr(record, f.name) is None)}


def encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_json"):
            return value.to_json()
        return encode_fields(value)
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return decode(arg, value, where)
            except EvidenceFormatError as exc:
                errors.append(str(exc))
        raise EvidenceFormatError(errors[0] if errors else f"{where}: unexpected {value!r}")
    if tp in (str, int, float, bool):
        if not is_json_type(value, tp):
            raise EvidenceFormatError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise EvidenceFormatError(f"{where}: expected a list, got {value!r}")
        return tuple(decode(get_args(tp)[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise EvidenceFormatError(f"{where}: expected an object, got {value!r}")
        return {k: decode(get_args(tp)[1], v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        from_json = getattr(tp, "from_json", None)
        if from_json is not None:
            return from_json(value, where)
        return decode_record(tp, value, where)
    raise TypeError(f"{where}: the codec does not handle {tp!r}")


def decode_record(cls: type[R], doc: Any, where: str) -> R:
    """A dataclass from a JSON object with exactly its fields (see the module)."""
    if not isinstance(doc, Mapping):
        raise EvidenceFormatError(f"{where}: expected an object, got {doc!r}")
    hints = _hints(cls)  # type: ignore[arg-type]
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = [f.name for f in fields]
    missing = [f.name for f in fields if f.name not in doc and not _omittable(f)]
    extra = [k for k in doc if k not in names]
    if missing or extra:
        raise EvidenceFormatError(f"{where}: fields do not match {cls.__name__} (missing: "
                                  f"{', '.join(missing) or 'none'}; unknown: "
                                  f"{', '.join(extra) or 'none'})")
    nulls = [f.name for f in fields if _omittable(f) and f.name in doc and doc[f.name] is None]
    if nulls:
        raise EvidenceFormatError(f"{where}: null given for {', '.join(nulls)}, which "
                                  f"{cls.__name__} writes by leaving out")
    return cls(**{n: decode(hints[n], doc[n], f"{where}.{n}") for n in names if n in doc})
