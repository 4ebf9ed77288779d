"""JSON for plain frozen dataclasses whose field names are their JSON keys (typed sections).

:func:`encode` turns a record into JSON values; :func:`decode` reads them back strictly, from the
field's type hints: every field's key must be present, no other key may be, and each value must
have its declared type. Strictness is what makes ``decode(encode(x)) == x`` and
``encode(decode(doc)) == doc`` exact: a document that does not fit is refused, never trimmed or
padded with defaults (callers fall back to a generic record that keeps it as it is).

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


def encode_fields(record: Any) -> dict[str, Any]:
    """A dataclass's fields as a JSON object (nested values through :func:`encode`)."""
    return {f.name: encode(getattr(record, f.name)) for f in dataclasses.fields(record)}


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
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    missing = [n for n in names if n not in doc]
    extra = [k for k in doc if k not in names]
    if missing or extra:
        raise EvidenceFormatError(f"{where}: fields do not match {cls.__name__} (missing: "
                                  f"{', '.join(missing) or 'none'}; unknown: "
                                  f"{', '.join(extra) or 'none'})")
    return cls(**{n: decode(hints[n], doc[n], f"{where}.{n}") for n in names})
