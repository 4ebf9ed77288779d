"""The SHA-256 manifest of a model directory, and the checks made against it.

A drill proves a restore by comparing every byte with what was backed up: this
module holds that contract. It parses and validates ``manifest.json`` (whose
paths are untrusted input, since they come back from a store a drill has just
damaged), hashes files in fixed 8 MiB chunks, and checks a local directory
against a manifest. ``FormatError`` is the error of every malformed part of a
model directory: manifest, config or shards.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST_FORMAT = "drillbook-manifest/1"
MANIFEST_NAME = "manifest.json"
HASH_CHUNK_BYTES = 8 * 1024 * 1024

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class FormatError(ValueError):
    """A manifest, config or shard set that is malformed or inconsistent."""


def sha256_file(path: Path) -> tuple[int, str]:
    """Return (size, sha256 hex) of a file, reading it in fixed-size chunks."""
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(HASH_CHUNK_BYTES)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while True:
            n = fh.readinto(view)
            if not n:
                break
            digest.update(view[:n])
            size += n
    return size, digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 hex of a file, streamed in 8 MiB chunks."""
    return sha256_file(path)[1]


def check_relative_path(path: str) -> str:
    """Validate a manifest path: relative, POSIX, no '..', no empty parts.

    Manifests come back from object stores that a drill has just damaged, so
    their paths are treated as untrusted input before being joined to a
    local directory.
    """
    if not path or "\\" in path or "\x00" in path:
        raise FormatError(f"invalid manifest path {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
        raise FormatError(f"invalid manifest path {path!r}")
    return path


@dataclass(frozen=True)
class ManifestFile:
    """One file of a model directory as recorded in the manifest."""

    path: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    """SHA-256 manifest of every file of a model directory except itself."""

    model: str
    files: tuple[ManifestFile, ...]
    created_utc: str
    format: str = MANIFEST_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "model": self.model,
            "files": [f.to_dict() for f in self.files],
            "created_utc": self.created_utc,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def file(self, path: str) -> ManifestFile | None:
        for entry in self.files:
            if entry.path == path:
                return entry
        return None

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and validate a manifest; raises ValueError on anything malformed."""
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FormatError(f"manifest is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise FormatError("manifest must be a JSON object")
        if raw.get("format") != MANIFEST_FORMAT:
            raise FormatError(f"unsupported manifest format {raw.get('format')!r}")
        model = raw.get("model")
        created = raw.get("created_utc")
        files_raw = raw.get("files")
        if not isinstance(model, str) or not isinstance(created, str):
            raise FormatError("manifest needs string 'model' and 'created_utc'")
        if not isinstance(files_raw, list):
            raise FormatError("manifest 'files' must be a list")
        files: list[ManifestFile] = []
        seen: set[str] = set()
        for item in files_raw:
            if not isinstance(item, dict):
                raise FormatError("manifest file entries must be objects")
            path, size, sha = item.get("path"), item.get("size"), item.get("sha256")
            if not isinstance(path, str):
                raise FormatError("manifest file entry needs a string 'path'")
            check_relative_path(path)
            if path == MANIFEST_NAME or path in seen:
                raise FormatError(f"manifest lists {path!r} more than once or lists itself")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise FormatError(f"manifest entry {path!r} has an invalid size")
            if not isinstance(sha, str) or not _SHA256_RE.match(sha):
                raise FormatError(f"manifest entry {path!r} has an invalid sha256")
            seen.add(path)
            files.append(ManifestFile(path=path, size=size, sha256=sha))
        return cls(model=model, files=tuple(files), created_utc=created)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.from_json(path.read_bytes())


def verify_dir(model_dir: Path, manifest: Manifest) -> list[str]:
    """Return the manifest paths whose local copy is missing or differs."""
    bad: list[str] = []
    for entry in manifest.files:
        path = model_dir / check_relative_path(entry.path)
        if not path.is_file():
            bad.append(entry.path)
            continue
        size, sha = sha256_file(path)
        if size != entry.size or sha != entry.sha256:
            bad.append(entry.path)
    return bad
