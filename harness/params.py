"""Scenario parameters: declared by the scenario, given by the user, validated by the engine.

A scenario lists what it can be told in ``params``, a tuple of :class:`Param`::

    params = (Param("alias", str, "champion", help="the alias the fault moves"),
              Param("nodes", int, 1, minimum=1, maximum=4, help="how many nodes to kill"))

Values come from three places, and the first that gives one wins:

    command line (--param k=v)  >  pytest marker (params={...})  >  inventory  >  default

Text from the command line is converted to the declared type; values from YAML and the marker
must already have it (an int where an int is declared, a float or an int where a float is).
Every value is checked against the declaration (choices, range); a name the scenario does not
declare is refused. The scenario reads the result from ``ctx.params`` with typed accessors
(``ctx.params.as_str("alias")``), and the engine records it in the journal and the evidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

#: a parameter's value: what YAML scalars, the command line and a marker can all give
ParamValue = str | int | float | bool
ParamType = type[str] | type[int] | type[float] | type[bool]

_T = TypeVar("_T")

#: where a value came from, strongest first
SOURCES = ("command line", "marker", "inventory", "default")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ParamError(ValueError):
    """A value a declaration refuses. ``at`` is (file, line, field) when the value came from
    a file (the inventory), so the caller can raise a located InventoryError."""

    def __init__(self, message: str, at: tuple[Path, int, str] | None = None) -> None:
        super().__init__(message)
        self.message, self.at = message, at


@dataclass(frozen=True)
class Param:
    """One declared parameter. ``default`` None makes it required."""

    name: str
    type: ParamType
    default: ParamValue | None = None
    help: str = ""
    choices: tuple[ParamValue, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        if self.type not in (str, int, float, bool):
            raise TypeError(f"parameter {self.name!r}: type must be str, int, float or bool")
        for value in ((self.default,) if self.default is not None else ()) + self.choices:
            # a bad declaration is the scenario author's bug: fail when the class is defined
            self.check(value)

    def describe(self) -> str:
        """One line for ``drillbook scenarios`` and error messages."""
        parts = [self.type.__name__]
        if self.choices:
            parts.append("one of " + ", ".join(map(str, self.choices)))
        if self.minimum is not None or self.maximum is not None:
            parts.append(f"from {_bound(self.minimum)} to {_bound(self.maximum)}")
        parts.append("required" if self.default is None else f"default {self.default}")
        return f"{self.name} ({'; '.join(parts)})" + (f": {self.help}" if self.help else "")

    def parse(self, text: str) -> ParamValue:
        """A value given as text (``--param name=text``), converted and checked."""
        value: ParamValue
        if self.type is bool:
            low = text.strip().lower()
            if low not in _TRUE | _FALSE:
                raise ParamError(f"{self.name}: {text!r} is not true or false")
            value = low in _TRUE
        elif self.type is int:
            try:
                value = int(text.strip())
            except ValueError as exc:
                raise ParamError(f"{self.name}: {text!r} is not a whole number") from exc
        elif self.type is float:
            try:
                value = float(text.strip())
            except ValueError as exc:
                raise ParamError(f"{self.name}: {text!r} is not a number") from exc
        else:
            value = text
        return self.check(value)

    def check(self, value: object) -> ParamValue:
        """A value given already typed (YAML, a marker): refused unless it has the declared
        type and fits the choices and range; an int is accepted for a float."""
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not self.type:
            raise ParamError(f"{self.name}: must be {_article(self.type)} (got "
                             f"{type(value).__name__} {value!r})")
        assert isinstance(value, (str, int, float, bool))
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamError(f"{self.name}: must be a finite number (got {value!r})")
        if isinstance(value, str) and (not value.strip() or any(ord(c) < 0x20 for c in value)):
            raise ParamError(f"{self.name}: must be non-empty text without control characters")
        if self.choices and value not in self.choices:
            raise ParamError(f"{self.name}: {value!r} is not one of "
                             f"{', '.join(map(repr, self.choices))}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise ParamError(f"{self.name}: {value!r} is below the minimum {self.minimum:g}")
            if self.maximum is not None and value > self.maximum:
                raise ParamError(f"{self.name}: {value!r} is above the maximum {self.maximum:g}")
        return value


def _bound(b: float | None) -> str:
    return "any" if b is None else f"{b:g}"


def _article(t: type) -> str:
    return {str: "text", int: "a whole number", float: "a number", bool: "true or false"}[t]


@dataclass(frozen=True)
class ParamValues:
    """The resolved parameters of one drill, and where each came from."""

    values: Mapping[str, ParamValue] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    def _get(self, name: str, want: type[_T]) -> _T:
        if name not in self.values:
            raise KeyError(f"no parameter {name!r} (declared: {', '.join(self.values) or 'none'})")
        value = self.values[name]
        # type(), not only isinstance: a bool is an int to isinstance
        if not isinstance(value, want) or type(value) is not want:
            raise TypeError(f"parameter {name!r} is {type(value).__name__}, not {want.__name__}")
        return value

    def as_str(self, name: str) -> str:
        return self._get(name, str)

    def as_int(self, name: str) -> int:
        return self._get(name, int)

    def as_float(self, name: str) -> float:
        return self._get(name, float)

    def as_bool(self, name: str) -> bool:
        return self._get(name, bool)

    def to_json(self) -> dict[str, ParamValue]:
        return dict(self.values)

    def describe(self) -> str:
        return ", ".join(f"{k}={v!r} ({self.sources.get(k, '?')})"
                         for k, v in self.values.items())


@dataclass(frozen=True)
class Given:
    """Values from one source, before resolution. ``raw`` values are text to parse (the
    command line); others are typed. ``located`` gives a value its place in a file
    (file, line, field), for errors."""

    source: str
    values: Mapping[str, object]
    raw: bool = False
    located: Mapping[str, tuple[Path, int, str]] = field(default_factory=dict)


def split_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """``["k=v", ...]`` as given to ``--param``; the last of a repeated name wins."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParamError(f"{pair!r} is not NAME=VALUE")
        out[name.strip()] = value
    return out


def resolve(declared: Iterable[Param], given: Iterable[Given], *,
            scenario: str = "the scenario") -> ParamValues:
    """Every declared parameter's value by precedence (``given`` strongest first, then the
    default). Raises :class:`ParamError` naming the source (and its place) of a bad value."""
    decl = {p.name: p for p in declared}
    values: dict[str, ParamValue] = {}
    sources: dict[str, str] = {}
    for g in given:
        for name, value in g.values.items():
            at = g.located.get(name)
            if name not in decl:
                known = ", ".join(decl) or "none"
                raise ParamError(f"{g.source}: {scenario} has no parameter {name!r} "
                                 f"(parameters: {known})", at)
            if name in values:
                continue  # a stronger source already gave it
            try:
                p = decl[name]
                values[name] = p.parse(value) if g.raw and isinstance(value, str) \
                    else p.check(value)
            except ParamError as exc:
                raise ParamError(f"{g.source}: {exc.message}", at) from exc
            sources[name] = g.source
    for name, p in decl.items():
        if name in values:
            continue
        if p.default is None:
            raise ParamError(f"{scenario} needs parameter {p.describe()}: give --param "
                             f"{name}=VALUE, the marker's params= or the inventory's drills:")
        values[name], sources[name] = p.default, "default"
    ordered = {name: values[name] for name in decl}
    return ParamValues(ordered, {name: sources[name] for name in decl})
