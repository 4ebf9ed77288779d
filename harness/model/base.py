"""The vocabulary every record shares: verdicts and exit codes, phases, step outcomes, scalars,
UTC timestamps, and the error a malformed evidence document raises when it is read back.

Reading helpers (:func:`req`, :func:`opt`) are used by every ``from_json`` in this package: they
check a field's presence and JSON type and say which field of which record was wrong, so a
document that does not match the model is refused with a reason, never half-read.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from harness.errors import UsageError

EVIDENCE_FORMAT = "drillbook-evidence/1"


class Verdict(enum.Enum):
    """The outcome of a drill; each has its own process exit code."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"

    @property
    def exit_code(self) -> int:
        return {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.INCONCLUSIVE: 2}[self]


#: Exit code for bad input (malformed inventory, unknown scenario, bad options): nothing ran.
EXIT_USAGE = 3
#: Exit code when the drill was interrupted (Ctrl-C) after revert ran.
EXIT_INTERRUPTED = 130


class Phase(enum.Enum):
    PREFLIGHT = "preflight"
    BASELINE = "baseline"
    INJECT = "inject"
    DETECT = "detect"
    RUNBOOK = "runbook"
    VERIFY = "verify"
    REVERT = "revert"
    EVIDENCE = "evidence"


class Outcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"  # the step ran and its check said no
    ERROR = "error"  # the step could not run (unreachable, tool missing, exception)
    SKIPPED = "skipped"


Scalar = str | int | float | bool | None


class EvidenceFormatError(UsageError):
    """An evidence document that does not match the model (wrong type, missing field, written
    by an older drillbook): it is refused with the field that is wrong, never half-read."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError("naive datetime in the record; every timestamp must be UTC-aware")
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def parse_utc(text: object, where: str) -> datetime:
    """A UTC-aware timestamp as :func:`iso` writes it."""
    if not isinstance(text, str):
        raise EvidenceFormatError(f"{where}: expected a UTC timestamp, got {text!r}")
    try:
        ts = parse_iso(text)
    except ValueError as exc:
        raise EvidenceFormatError(f"{where}: not a timestamp: {text!r}") from exc
    if ts.tzinfo is None:
        raise EvidenceFormatError(f"{where}: timestamp without a time zone: {text!r}")
    return ts


T = TypeVar("T")

_JSON_TYPES: dict[type, str] = {str: "a string", int: "an integer", float: "a number",
                                bool: "a boolean", dict: "an object", list: "a list"}


def is_json_type(value: object, kind: type) -> bool:
    if kind is float:  # JSON does not tell 1 from 1.0
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def req(doc: Mapping[str, Any], key: str, kind: type[T], where: str) -> T:
    """``doc[key]``, which must be present and of JSON type ``kind``."""
    if key not in doc:
        raise EvidenceFormatError(f"{where}: missing field {key!r}")
    value = doc[key]
    if not is_json_type(value, kind):
        raise EvidenceFormatError(f"{where}.{key}: expected {_JSON_TYPES.get(kind, kind)}, "
                                  f"got {value!r}")
    out: T = value
    return out


def opt(doc: Mapping[str, Any], key: str, kind: type[T], where: str) -> T | None:
    """``doc[key]`` of JSON type ``kind``, or None (absent or null)."""
    if doc.get(key) is None:
        return None
    return req(doc, key, kind, where)


def obj(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise EvidenceFormatError(f"{where}: expected an object, got {value!r}")
    return value


def scalar_map(value: object, where: str) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for k, v in obj(value, where).items():
        if v is not None and not isinstance(v, (str, int, float, bool)):
            raise EvidenceFormatError(f"{where}.{k}: expected a scalar, got {v!r}")
        out[k] = v
    return out


def str_map(value: object, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in obj(value, where).items():
        if not isinstance(v, str):
            raise EvidenceFormatError(f"{where}.{k}: expected a string, got {v!r}")
        out[k] = v
    return out


def str_list(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise EvidenceFormatError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def enum_of(kind: type[T], value: object, where: str) -> T:
    try:
        return kind(value)  # type: ignore[call-arg]
    except ValueError as exc:
        raise EvidenceFormatError(f"{where}: unknown value {value!r}") from exc
