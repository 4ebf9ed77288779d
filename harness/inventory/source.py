"""Reading an inventory file without trusting it: bytes -> text -> YAML nodes -> plain data.

Every step is bounded and every failure is an :class:`~harness.errors.InventoryError` with the
file, a line and a field, never a traceback and never a hang:

- the file must be a regular file of at most :data:`MAX_BYTES` (a FIFO or ``/dev/zero`` is
  refused before it is read);
- the bytes must be UTF-8 (a UTF-8 byte-order mark is allowed), and the text may hold no
  character YAML forbids (NUL and other control characters), located by line and column;
- nesting deeper than :data:`MAX_DEPTH` is refused before the YAML is composed (PyYAML's
  composer recurses once per level, in Python or, with libyaml, in C, so 5,000 levels would
  otherwise be a RecursionError or worse);
- the node graph is turned into data here, not by PyYAML's constructor: an alias that contains
  itself is refused, and expansion stops after :data:`MAX_VALUES` values, so a "billion laughs"
  file costs milliseconds; only plain tags (strings, numbers, booleans, null, dates, lists,
  mappings, ``<<`` merges) are accepted, a scalar that cannot be read (``2026-13-45`` as a date,
  an integer of 5,000 digits) is located, keys must be strings or integers, and duplicate keys
  are refused.

The result is the data and a map from each field's path to its line.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import InventoryError

#: an inventory is a few kilobytes; a big site's is well under this
MAX_BYTES = 1 << 20
#: nesting levels of lists and mappings (a real inventory uses five or six)
MAX_DEPTH = 64
#: values after alias expansion (a real inventory has a few hundred)
MAX_VALUES = 50_000

#: a field's path: mapping keys and list indexes from the top of the document
Path_ = tuple[str | int, ...]

# Characters YAML 1.1 does not allow in a stream (PyYAML's Reader refuses them with an error
# that carries no line, so they are found first, here, with one).
_FORBIDDEN = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_T = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_T + "str", _T + "int", _T + "float", _T + "bool", _T + "null",
                _T + "timestamp"}


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.+-]+")


def dotted(path: Path_) -> str:
    """``("assets", 0, "tier")`` -> ``assets[0].tier``; the empty path is the top level. A key
    that is not a plain word is quoted, with ``:`` and white space escaped, so the field in
    ``file:line: field: message`` never holds ``": "`` (``["a\\u003a b"]``)."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _PLAIN_KEY.fullmatch(p):
            out += ("." if out else "") + p
        else:
            quoted = json.dumps(p)
            for ch in sorted(set(quoted)):
                if ch == ":" or ch.isspace():
                    quoted = quoted.replace(ch, f"\\u{ord(ch):04x}")
            out += f"[{quoted}]"
    return out or "(top level)"


def line_key(path: Path_) -> tuple[str, ...]:
    return tuple(str(x) for x in path)


@dataclass(frozen=True)
class Parsed:
    file: Path
    data: Any
    lines: dict[tuple[str, ...], int]


def parse_file(file: Path) -> Parsed:
    """Read, decode and parse ``file``; raises InventoryError for anything it cannot accept."""
    text = _read_text(file)
    node = _compose(file, text)
    if node is None:
        return Parsed(file, None, {})
    builder = _Builder(file)
    data = builder.build(node, (), None)
    return Parsed(file, data, builder.lines)


def _read_text(file: Path) -> str:
    try:
        st = os.stat(file)
        if not stat.S_ISREG(st.st_mode):
            raise InventoryError(file, 0, "(file)", "is not a regular file")
        with open(file, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InventoryError(file, 0, "(file)", f"cannot read: {reason}") from exc
    if len(raw) > MAX_BYTES:
        raise InventoryError(file, 1, "(file)", f"is larger than {MAX_BYTES} bytes; an "
                                                f"inventory is a few kilobytes")
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InventoryError(file, line, "(encoding)",
                             f"byte 0x{raw[exc.start]:02x} at column {column} is not UTF-8 "
                             f"(save the file as UTF-8)") from exc
    bad = _FORBIDDEN.search(text)
    if bad is not None:
        i = bad.start()
        line = text.count("\n", 0, i) + 1
        column = i - (text.rfind("\n", 0, i) + 1) + 1
        raise InventoryError(file, line, "(encoding)",
                             f"character U+{ord(bad.group()):04X} at column {column} is a "
                             f"control character, not allowed in YAML")
    return text


class _DepthLimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a bound on nesting while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self.depth -= 1


_FLOW = re.compile(r"""[\[\]{}'"#\n\\]""")


def _check_flow_depth(file: Path, text: str) -> None:
    """Refuse deep ``[[[...`` / ``{{{...`` before PyYAML sees them: its scanner looks ahead to
    the end of every open flow collection (a possible key), quadratic in the nesting, so 5,000
    levels take seconds before the composer's bound is reached. Quoted text and comments are
    skipped; a quote only opens where a scalar can start."""
    depth, line, quote, comment = 0, 1, "", False
    for m in _FLOW.finditer(text):
        ch, i = m.group(), m.start()
        before = text[i - 1] if i else "\n"
        if ch == "\n":
            line, comment = line + 1, False
            if quote == "'":  # a single-quoted scalar may span lines; a comment may not
                continue
        elif comment:
            continue
        elif quote:
            if ch == quote and not (quote == '"' and before == "\\"):
                quote = ""
        elif ch == "#" and (before.isspace() or i == 0):
            comment = True
        elif ch in "'\"" and (before.isspace() or before in "[{,:-" or i == 0):
            quote = ch
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise InventoryError(file, line, "(syntax)",
                                     f"nested deeper than {MAX_DEPTH} levels")
        elif ch in "]}":
            depth = max(0, depth - 1)


#: libyaml's parser and composer (C) when PyYAML was built with it: five to ten times faster
_CLoader: Any = getattr(yaml, "CSafeLoader", None)


def _check_depth_c(file: Path, text: str) -> None:
    """Bound nesting before libyaml composes (its composer recurses in C, once per level):
    one pass over the events, which libyaml produces without recursion."""
    parser = _CLoader(text)
    try:
        depth = 0
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    raise InventoryError(file, mark.line + 1 if mark else 1, "(syntax)",
                                         f"nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    finally:
        parser.dispose()


def _compose(file: Path, text: str) -> yaml.Node | None:
    _check_flow_depth(file, text)
    try:
        if _CLoader is not None:
            _check_depth_c(file, text)
            loader = _CLoader(text)
        else:
            loader = _DepthLimitedLoader(text)
        try:
            node: yaml.Node | None = loader.get_single_node()
        finally:
            loader.dispose()
        return node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "not understood"
        raise InventoryError(file, line, "(syntax)", f"not valid YAML: {problem}") from exc
    except yaml.YAMLError as exc:  # a ReaderError: should have been caught above, but be sure
        raise InventoryError(file, 1, "(syntax)", f"not valid YAML: {exc}") from exc
    except RecursionError as exc:  # belt and braces: the depth bound keeps this away
        raise InventoryError(file, 1, "(syntax)", "nested too deeply") from exc


class _Builder:
    """Turns the node graph into dicts, lists and scalars, recording each path's line.

    A node met again through an alias is not walked again: its value is reused and its size
    and height (memoised per node) are charged, so a "billion laughs" file is refused after
    a few thousand steps instead of being expanded."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.lines: dict[tuple[str, ...], int] = {}
        self.count = 0
        self.built: dict[int, Any] = {}  # node id -> its value, once built
        self.shape: dict[int, tuple[int, int]] = {}  # node id -> (values, height)
        self.active: set[int] = set()  # nodes being built: meeting one again is recursion
        self.scalars = yaml.SafeLoader("")  # its constructor methods read plain scalars

    def fail(self, line: int, path: Path_, message: str) -> InventoryError:
        return InventoryError(self.file, line, dotted(path), message)

    def measure(self, node: yaml.Node, depth: int = 0) -> tuple[int, int] | None:
        """(values, height) of a node with every alias expanded; None when that cannot be
        told cheaply (recursion, or deeper than allowed): walking it will say why."""
        known = self.shape.get(id(node))
        if known is not None:
            return known
        if depth > MAX_DEPTH or id(node) in self.active:
            return None
        if isinstance(node, yaml.ScalarNode):
            result = (1, 0)
        else:
            children: list[yaml.Node] = (
                [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                else list(node.value))
            total, height = 1, 0
            self.active.add(id(node))
            try:
                for child in children:
                    m = self.measure(child, depth + 1)
                    if m is None:
                        return None
                    total, height = min(total + m[0], MAX_VALUES + 1), max(height, m[1] + 1)
            finally:
                self.active.discard(id(node))
            result = (total, height)
        self.shape[id(node)] = result
        return result

    def build(self, node: yaml.Node, path: Path_, ref_line: int | None) -> Any:
        """``ref_line``: the line of the key naming this value (used when it is an alias)."""
        line = node.start_mark.line + 1
        again = id(node) in self.built
        if again and ref_line is not None:
            line = ref_line  # an alias: point at where it is used, not at its anchor
        self.lines.setdefault(line_key(path), line)
        if len(path) > MAX_DEPTH:
            raise self.fail(line, path, f"nested deeper than {MAX_DEPTH} levels (through "
                                        f"aliases)")
        if again:
            values, height = self.shape.get(id(node)) or (1, 0)
            self.charge(values, line, path)
            if len(path) + height > MAX_DEPTH:
                raise self.fail(line, path, f"nested deeper than {MAX_DEPTH} levels (through "
                                            f"aliases)")
            return self.built[id(node)]
        self.charge(1, line, path)
        if isinstance(node, yaml.ScalarNode):
            value = self.scalar(node, path, line)
        else:
            if id(node) in self.active:
                raise self.fail(line, path, "recursive alias: this value contains itself")
            self.active.add(id(node))
            try:
                if isinstance(node, yaml.SequenceNode) and node.tag == _T + "seq":
                    value = [self.build(item, path + (i,), None)
                             for i, item in enumerate(node.value)]
                elif isinstance(node, yaml.MappingNode) and node.tag == _T + "map":
                    value = self.mapping(node, path)
                else:
                    raise self.fail(line, path,
                                    f"YAML tag {node.tag!r} is not used in an inventory")
            finally:
                self.active.discard(id(node))
        self.built[id(node)] = value
        if id(node) not in self.shape:
            self.measure(node)
        return value

    def charge(self, values: int, line: int, path: Path_) -> None:
        self.count += values
        if self.count > MAX_VALUES:
            raise self.fail(line, path, f"expands to more than {MAX_VALUES} values (aliases "
                                        f"repeating aliases?); an inventory is far smaller")

    def scalar(self, node: yaml.ScalarNode, path: Path_, line: int) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise self.fail(line, path, f"YAML tag {node.tag!r} is not used in an inventory")
        construct: Callable[[yaml.Node], Any] = getattr(
            self.scalars, "construct_yaml_" + node.tag.rsplit(":", 1)[1])
        try:
            return construct(node)
        except (ValueError, OverflowError, TypeError, yaml.YAMLError) as exc:
            what = {"timestamp": "date or time", "int": "integer", "float": "number",
                    "bool": "boolean"}.get(node.tag.rsplit(":", 1)[1], "value")
            text = node.value if len(node.value) <= 40 else node.value[:40] + "..."
            raise self.fail(line, path, f"{text!r} is not a valid {what} ({exc})") from exc

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == _T + "merge":
                self.merge(value_node, path, key_line, merged)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_line, path, "a key must be a plain word, not a list or "
                                                "a mapping")
            key = self.scalar(key_node, path, key_line)
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise self.fail(key_line, path, f"key {key_node.value!r} is read as "
                                                f"{type(key).__name__}; quote it")
            if key in out:
                raise self.fail(key_line, path + (key,), "duplicate key")
            out[key] = self.build(value_node, path + (key,), key_line)
        for key, value in merged.items():
            out.setdefault(key, value)
        return out

    def merge(self, value: yaml.Node, path: Path_, line: int, into: dict[Any, Any]) -> None:
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise self.fail(line, path, "<< must name a mapping (or a list of mappings)")
            built = self.build(source, path, line)
            for key, item in built.items():
                into.setdefault(key, item)
