"""Evidence sections with declared types: a registry from section name to record type.

A scenario adds its own evidence (a load timeline, loss accounting, ...) as a *section*. The typed
way is a frozen dataclass registered under its name; the reports then read its fields, never
string keys::

    @register_section("replication")
    @dataclass(frozen=True)
    class ReplicationSection(TypedSection):
        job: str
        canaries_written: int
        max_last_sync_age_s: float | None

    ctx.section(ReplicationSection(job="replicate", canaries_written=12, max_last_sync_age_s=4.1))

Field names are the JSON keys (harness/model/codec.py): every field is written, and a document
is read back as the type only when its keys and value types match exactly; otherwise it is kept
as a :class:`GenericSection`, which renders as a key/value table. So a site's unknown section, or a
section written as a plain dict (``ctx.findings.sections[name] = {...}``, the older API, still
accepted), always renders and never crashes the report.

A section that judges a service-level objective exposes it as ``slo`` (a
:class:`~harness.model.results.SloResult`); harness/verdict.py turns each into an ``slo:<name>``
objective.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from harness.model.base import EvidenceFormatError, obj
from harness.model.codec import decode_record, encode_fields
from harness.model.results import SloResult


class Section:
    """What every section offers: its JSON object, its SLO if it judges one, and a read-only
    mapping view of its JSON (``section["key"]``) for code written against the dict sections."""

    #: the name it is registered under (typed sections only)
    section_name: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def slo(self) -> SloResult | None:
        return None

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_json().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())


@dataclass(frozen=True)
class GenericSection(Section):
    """A section without a declared type (or whose document does not fit it): its JSON object
    kept exactly as written, shown as a key/value table."""

    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)

    @property
    def slo(self) -> SloResult | None:
        raw = self.data.get("slo")
        if not isinstance(raw, dict) or "met" not in raw:
            return None
        try:
            return SloResult.from_json(raw)
        except EvidenceFormatError:
            return None


class TypedSection(Section):
    """Base of declared section types (frozen dataclasses registered with
    :func:`register_section`); JSON comes from the fields (harness/model/codec.py)."""

    def to_json(self) -> dict[str, Any]:
        return encode_fields(self)

    @classmethod
    def from_json(cls, doc: Any, where: str = "section") -> Self:
        return decode_record(cls, doc, where)


S = TypeVar("S", bound=TypedSection)

SECTION_TYPES: dict[str, type[TypedSection]] = {}


def register_section(name: str) -> Callable[[type[S]], type[S]]:
    """Declare the type of the section called ``name`` (a class decorator). A name registered
    twice with different types is a programming error."""

    def add(cls: type[S]) -> type[S]:
        known = SECTION_TYPES.get(name)
        if known is not None and known is not cls:
            raise ValueError(f"section {name!r} is already declared as {known.__name__}")
        cls.section_name = name
        SECTION_TYPES[name] = cls
        return cls

    return add


def section_from_json(name: str, doc: Any) -> Section:
    """The section called ``name`` from its JSON object: its declared type when the document
    fits it exactly, else a :class:`GenericSection` holding it as written."""
    if isinstance(doc, Section):
        return doc
    data = obj(doc, f"sections.{name}")
    cls = SECTION_TYPES.get(name)
    if cls is not None:
        try:
            return cls.from_json(data, f"sections.{name}")
        except EvidenceFormatError:
            pass  # a scenario's older or own shape under a known name: still shown, generically
    return GenericSection(dict(data))


def sections_from_json(doc: Mapping[str, Any]) -> dict[str, Section]:
    return {name: section_from_json(name, value) for name, value in doc.items()}
