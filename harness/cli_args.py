"""Argument types for the ``drillbook`` command: every value is checked while the command line
is parsed, so a bad one exits 3 with a message naming the option, before anything runs.

Each function here is an argparse ``type=``: it takes the text as given and returns the value
or raises :class:`argparse.ArgumentTypeError` with a sentence for the user (argparse prefixes
the option's name). Paths are checked for what the command will do with them (a directory to
write into must not be a file, a file to read must be a regular file), without creating
anything.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import stat
from datetime import date
from pathlib import Path

#: the largest model the lab will generate (it is written to a sparse file on this machine)
MAX_MODEL_BYTES = 64 * 1024**3
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(b|kib|mib|gib)\s*", re.IGNORECASE)
_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
#: corrective-action states (reports.findings.STATUSES; kept here so parsing imports no renderer)
FINDING_STATUSES = ("open", "in-progress", "done", "accepted-risk")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")


def _bad(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def _clean(text: str, what: str) -> str:
    if not text.strip():
        raise _bad(f"{what} must not be empty")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF
           for c in text):
        raise _bad(f"{what} {text!r} holds a control character or bytes that are not text")
    return text


def text(value: str) -> str:
    """Free text (a title, a reason, a name): not empty, no control characters."""
    return _clean(value, "the value")


def name(value: str) -> str:
    """An identifier (scenario, variant, asset id, finding id)."""
    _clean(value, "the name")
    if _ID.fullmatch(value) is None:
        raise _bad(f"{value!r} is not a name (letters, digits, '.', '_', '-')")
    return value


def iso_date(value: str) -> str:
    try:
        return date.fromisoformat(_clean(value, "the date").strip()).isoformat()
    except ValueError as exc:
        raise _bad(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def participant(value: str) -> str:
    """NAME:ROLE, checked here and kept as given (the exercise record parses it)."""
    # imported here: provenance brings the inventory and the evidence model, which building
    # the parser and most command lines never need
    from harness.provenance import parse_participant
    _clean(value, "the participant")
    try:
        parse_participant(value)
    except ValueError as exc:
        raise _bad(str(exc)) from exc
    return value


def _number(value: str, what: str) -> float:
    try:
        n = float(_clean(value, what))
    except ValueError as exc:
        raise _bad(f"{value!r} is not a number") from exc
    if not math.isfinite(n):
        raise _bad(f"{value!r} is not a finite number")
    return n


def fraction_or_more(value: str) -> float:
    """A relative change such as 0.2 (20 %): zero or more."""
    n = _number(value, "the tolerance")
    if n < 0:
        raise _bad(f"must be zero or more (got {value})")
    return n


def seconds(value: str) -> float:
    """A duration in seconds: zero or more."""
    n = _number(value, "the duration")
    if n < 0:
        raise _bad(f"must be zero or more seconds (got {value})")
    return n


def seed(value: str) -> int:
    try:
        n = int(_clean(value, "the seed").strip())
    except ValueError as exc:
        raise _bad(f"{value!r} is not a whole number") from exc
    if not 0 <= n < 2**63:
        raise _bad(f"must be from 0 to 2**63-1 (got {value})")
    return n


def size(value: str) -> int:
    """A size such as 8MiB, 512MiB or 2GiB (binary units), at least one KiB."""
    m = _SIZE.fullmatch(_clean(value, "the size"))
    if m is None:
        raise _bad(f"size {value!r} not understood; use e.g. 8MiB or 2GiB")
    n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if not 1024 <= n <= MAX_MODEL_BYTES:
        raise _bad(f"size {value!r} must be from 1KiB to {MAX_MODEL_BYTES // 1024**3}GiB")
    return n


def _path(value: str, what: str) -> Path:
    _clean(value, what)
    return Path(value)


def any_path(value: str) -> Path:
    """A path checked only for being text; the command reports what it finds there."""
    return _path(value, "the path")


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _bad(f"{path}: {exc.strerror}") from exc


def existing_file(value: str) -> Path:
    """A file to read: it must exist and be a regular file."""
    path = _path(value, "the file")
    st = _stat(path)
    if st is None:
        raise _bad(f"{path} does not exist")
    if not stat.S_ISREG(st.st_mode):
        raise _bad(f"{path} is not a regular file")
    return path


def existing_dir(value: str) -> Path:
    """A directory to read: it must exist."""
    path = _path(value, "the directory")
    st = _stat(path)
    if st is None:
        raise _bad(f"{path} does not exist")
    if not stat.S_ISDIR(st.st_mode):
        raise _bad(f"{path} is not a directory")
    return path


def output_dir(value: str) -> Path:
    """A directory that will be written into (created when missing): it may not exist yet,
    but it may not be a file, nor sit under one."""
    path = _path(value, "the directory")
    st = _stat(path)
    if st is not None:
        if not stat.S_ISDIR(st.st_mode):
            raise _bad(f"{path} exists and is not a directory")
        return path
    parent = path.absolute().parent
    while _stat(parent) is None and parent != parent.parent:
        parent = parent.parent
    pst = _stat(parent)
    if pst is not None and not stat.S_ISDIR(pst.st_mode):
        raise _bad(f"{path} cannot be made: {parent} is not a directory")
    return path


def output_prefix(value: str) -> Path:
    """A path prefix for files to write (PREFIX.key, PREFIX.pub)."""
    path = _path(value, "the path")
    if path.name in ("", ".", ".."):
        raise _bad(f"{value!r} names a directory; give a file prefix such as keys/drill")
    output_dir(str(path.parent))
    return path


def assignment(value: str) -> tuple[str, str]:
    """NAME=VALUE, a scenario parameter (``--param``): the name is checked here, the value
    against the scenario's declaration once the scenario is known."""
    _clean(value, "the parameter")
    key, sep, rest = value.partition("=")
    if not sep:
        raise _bad(f"{value!r} is not NAME=VALUE")
    if _ID.fullmatch(key) is None:
        raise _bad(f"{key!r} is not a parameter name (letters, digits, '.', '_', '-')")
    if not rest.strip():
        raise _bad(f"parameter {key!r} has no value (NAME=VALUE)")
    return key, rest
