"""Typed access to the parsed inventory that turns every mistake into a located InventoryError.

A :class:`Reader` knows the file and the line of every field; its methods read one field of a
mapping as the type the harness needs (a non-empty string without control characters, a finite
positive number of seconds, a fraction, a count, a date, a name that may appear in a path, a
bucket name, a secret) and raise ``file:line: field: message`` otherwise. Numbers are finite
(``.nan`` and ``.inf`` are refused everywhere) and bounded, so nothing downstream overflows.
"""

from __future__ import annotations

import math
import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from harness.errors import InventoryError
from harness.inventory.model import Secret
from harness.inventory.source import Path_, dotted, line_key

#: the longest duration any field may give, in seconds (about 31 years)
MAX_SECONDS = 1e9
#: names that end up in file names, lock names and evidence folders: no slashes, no spaces
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: S3 bucket names (lenient: Ceph and old AWS buckets allow capitals and underscores)
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def kind_of(v: Any) -> str:
    if v is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(v), type(v).__name__)


def _control(text: str, multiline: bool) -> int | None:
    """Index of the first character that has no place in a field (control characters, lone
    surrogates from a YAML escape, non-characters); tab and newline only in free text."""
    for i, ch in enumerate(text):
        o = ord(ch)
        if multiline and ch in "\n\t":
            continue
        if o < 0x20 or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF or o in (0xFFFE, 0xFFFF):
            return i
    return None


class Reader:
    def __init__(self, file: Path, lines: dict[tuple[str, ...], int]) -> None:
        self.file = file
        self.lines = lines

    def line(self, path: Path_) -> int:
        key = line_key(path)
        while key and key not in self.lines:
            key = key[:-1]
        return self.lines.get(key, 1)

    def fail(self, path: Path_, message: str) -> InventoryError:
        return InventoryError(self.file, self.line(path), dotted(path), message)

    def mapping(self, value: Any, path: Path_) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a mapping (got {kind_of(value)})")
        return value

    def section(self, top: dict[Any, Any], key: str) -> dict[Any, Any]:
        """An optional top-level section: absent or empty is ``{}``."""
        value = top.get(key)
        return {} if value is None else self.mapping(value, (key,))

    def known(self, m: dict[Any, Any], path: Path_, allowed: set[str]) -> None:
        for key in m:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                raise self.fail(path + (str(key),), f"unknown field (allowed here: {hint})")

    def req(self, m: dict[Any, Any], key: str, path: Path_) -> Any:
        if key not in m or m[key] is None:
            raise self.fail(path + (key,), "is required")
        return m[key]

    def string(self, m: dict[Any, Any], key: str, path: Path_, *, default: str | None = None,
               required: bool = True, multiline: bool = False) -> str:
        if key not in m or m[key] is None:
            if default is not None or not required:
                return default or ""
            raise self.fail(path + (key,), "is required")
        return self.text(m[key], path + (key,), multiline=multiline)

    def text(self, v: Any, path: Path_, *, multiline: bool = False) -> str:
        if not isinstance(v, str) or not v.strip():
            raise self.fail(path, f"must be a non-empty string (got {kind_of(v)})")
        bad = _control(v, multiline)
        if bad is not None:
            raise self.fail(path, f"character U+{ord(v[bad]):04X} at position {bad + 1} is a "
                                  f"control character")
        return v

    def name(self, m: dict[Any, Any], key: str, path: Path_, *, what: str = "a name",
             required: bool = True) -> str | None:
        """An identifier (asset id, target name): letters, digits, '.', '_', '-'."""
        if not required and m.get(key) is None:
            return None
        v = self.string(m, key, path)
        self.check_name(v, path + (key,), what)
        return v

    def check_name(self, v: Any, path: Path_, what: str) -> None:
        if not isinstance(v, str) or _NAME.fullmatch(v) is None:
            raise self.fail(path, f"{what} must be 1-128 letters, digits, '.', '_' or '-', "
                                  f"starting with a letter or digit (got {v!r})")

    def bucket(self, m: dict[Any, Any], key: str, path: Path_, *, default: str | None = None,
               required: bool = True) -> str | None:
        if m.get(key) is None and default is None and not required:
            return None
        v = self.string(m, key, path, default=default)
        if _BUCKET.fullmatch(v) is None:
            raise self.fail(path + (key,), f"is not a bucket name (letters, digits, '.', '_', "
                                           f"'-'; got {v!r})")
        return v

    def number(self, m: dict[Any, Any], key: str, path: Path_,
               default: float | None = None) -> float:
        """A positive, finite number of seconds."""
        if key not in m:
            if default is None:
                raise self.fail(path + (key,), "is required")
            return default
        v = m[key]
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                or v <= 0):
            raise self.fail(path + (key,), f"must be a positive number of seconds (got {v!r})")
        if v > MAX_SECONDS:
            raise self.fail(path + (key,), f"must be at most {MAX_SECONDS:g} seconds "
                                           f"(got {v!r})")
        return float(v)

    def positive(self, m: dict[Any, Any], key: str, path: Path_, default: float) -> float:
        if key not in m:
            return default
        v = m[key]
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                or not 0 < v <= MAX_SECONDS):
            raise self.fail(path + (key,), f"must be a positive number (got {v!r})")
        return float(v)

    def fraction(self, m: dict[Any, Any], key: str, path: Path_, default: float, *,
                 zero_ok: bool) -> float:
        if key not in m:
            return default
        v = m[key]
        number = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        if not number or not ((v >= 0) if zero_ok else (v > 0)) or v > 1:
            span = "[0, 1]" if zero_ok else "(0, 1]"
            raise self.fail(path + (key,), f"must be a fraction in {span} (got {v!r})")
        return float(v)

    def count(self, m: dict[Any, Any], key: str, path: Path_, default: int | None, *,
              minimum: int, maximum: int) -> int | None:
        if key not in m or (default is None and m[key] is None):
            return default
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum:
            raise self.fail(path + (key,), f"must be a whole number >= {minimum} and <= "
                                           f"{maximum} (got {v!r})")
        return v

    def boolean(self, m: dict[Any, Any], key: str, path: Path_, default: bool = False) -> bool:
        v = m.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(path + (key,), f"must be true or false (got {v!r})")
        return v

    def tier(self, m: dict[Any, Any], path: Path_) -> int:
        tier = self.req(m, "tier", path)
        if isinstance(tier, bool) or not isinstance(tier, int) or tier not in (1, 2, 3):
            raise self.fail(path + ("tier",), f"must be 1, 2 or 3 (got {tier!r})")
        return tier

    def date(self, m: dict[Any, Any], key: str, path: Path_) -> str | None:
        """A calendar date, written YYYY-MM-DD (YAML reads it as a date; a quoted one is
        checked the same way); returned in ISO form."""
        v = m.get(key)
        if v is None:
            return None
        if isinstance(v, datetime):
            raise self.fail(path + (key,), f"must be a date without a time (got {v!r})")
        if isinstance(v, date):
            return v.isoformat()
        text = self.text(v, path + (key,))
        try:
            return date.fromisoformat(text.strip()).isoformat()
        except ValueError as exc:
            raise self.fail(path + (key,), f"{text!r} is not a date (YYYY-MM-DD: {exc})") from exc

    def argv(self, m: dict[Any, Any], key: str, path: Path_, *, required: bool) -> tuple[str, ...]:
        v = self.req(m, key, path) if required else m.get(key, [])
        if not isinstance(v, list) or (required and not v):
            raise self.fail(path + (key,), "must be a non-empty list of strings (an argv)")
        for i, item in enumerate(v):
            self.text(item, path + (key, i))
        return tuple(v)

    def path(self, m: dict[Any, Any], key: str, p: Path_, *, required: bool = True
             ) -> Path | None:
        raw = self.string(m, key, p, required=required)
        return Path(raw) if raw else None

    def beside(self, file: Path, raw: str, path: Path_) -> Path:
        """``raw`` resolved against the inventory's directory."""
        try:
            return (file.parent / raw).resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # RuntimeError: a symlink loop
            raise self.fail(path, f"cannot resolve {raw!r}: {exc}") from exc

    def secret(self, m: dict[Any, Any], key: str, path: Path_,
               required: bool = True) -> Secret | None:
        env_key = f"{key}_env"
        if key in m and env_key in m:
            raise self.fail(path + (key,), f"give either {key} or {env_key}, not both")
        if env_key in m:
            var = self.string(m, env_key, path)
            if "=" in var:
                raise self.fail(path + (env_key,), f"is not an environment variable name "
                                                   f"(got {var!r})")
            if var not in os.environ:
                raise self.fail(path + (env_key,), f"environment variable {var} is not set")
            return Secret(os.environ[var])
        if key in m:
            return Secret(self.string(m, key, path))
        if required:
            raise self.fail(path + (key,), f"is required (or {env_key})")
        return None
