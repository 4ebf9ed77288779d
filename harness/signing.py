"""Sealing and signing a drill's evidence folder, and checking it later.

``SHA256SUMS`` lists the SHA-256 of every file in the folder (``sha256sum -c`` reads it too).
``SHA256SUMS.sig`` is a JSON document with an ed25519 signature over the exact bytes of
``SHA256SUMS``, the signer's public key and its fingerprint. :func:`verify` re-hashes every file
and names each one that changed, appeared or disappeared, then checks the signature; evidence
without a signature is reported as unsigned, which is not a pass. Every entry of the folder
counts, whatever its name: a file nobody sealed is UNLISTED, and a symbolic link, FIFO or other
non-regular entry is a problem of its own (it is never followed or read).

Exit codes of ``drillbook verify`` (:attr:`Verification.exit_code`): 0 intact and signed (by the
pinned key when one is given); 1 something changed, appeared or disappeared, the signature is bad
or made by another key, or a key was pinned and the signature is missing; 2 intact but unsigned
and no key pinned (honest, but nothing vouches for it).

Keys: ``drillbook keygen`` writes a PKCS#8 PEM private key (mode 0600) and its public key. The
private key is read from the path given and used in memory only; nothing here writes it anywhere
else, and the public key in the signature file is only a hint: pin the key you trust with
``--public-key`` (or the inventory's ``evidence.public_key``) so a forger cannot ship their own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from harness.errors import UsageError

SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.sig"
KEY_ENV = "DRILLBOOK_SIGNING_KEY"
PUBLIC_KEY_ENV = "DRILLBOOK_PUBLIC_KEY"
#: files in a drill folder that are not evidence: the seal itself (nothing else is exempt)
_NOT_SEALED = {SUMS, SIGNATURE}
EXIT_OK, EXIT_FAILED, EXIT_UNSIGNED = 0, 1, 2


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _walk(directory: Path) -> tuple[list[str], list[str]]:
    """(regular files, other entries) under ``directory`` as sorted POSIX relative paths; links
    are listed as entries, never followed."""
    files: list[str] = []
    odd: list[str] = []
    for root, dirs, names in os.walk(directory, followlinks=False):
        base = Path(root)
        for d in list(dirs):
            if (base / d).is_symlink():
                dirs.remove(d)
                odd.append((base / d).relative_to(directory).as_posix())
        for name in names:
            path = base / name
            rel = path.relative_to(directory).as_posix()
            if path.is_symlink() or not path.is_file():
                odd.append(rel)
            elif rel not in _NOT_SEALED:
                files.append(rel)
    return sorted(files), sorted(odd)


def evidence_files(directory: Path) -> list[str]:
    """Every regular file in the folder (recursively, as POSIX relative paths) except the seal;
    no name is exempt (an added ``evil.tmp`` counts like any other file)."""
    return _walk(directory)[0]


def sums_text(directory: Path) -> str:
    return "".join(f"{_file_sha256(directory / rel)}  {rel}\n"
                   for rel in evidence_files(directory))


# --- keys -------------------------------------------------------------------------------------------

def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]


def keygen(prefix: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write PREFIX.key (private, 0600) and PREFIX.pub; returns both paths."""
    key_path, pub_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(
        prefix.name + ".pub")
    if not overwrite and (key_path.exists() or pub_path.exists()):
        raise UsageError(f"{key_path} or {pub_path} already exists; refusing to overwrite a key")
    key_path.parent.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_path.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_path, pub_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"cannot read the signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{path} is not an ed25519 private key (make one with drillbook keygen)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"cannot read the public key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{path} is not an ed25519 public key")
    return key


def resolve_key(option: Path | None, inventory_key: Path | None, env: str = KEY_ENV) -> Path | None:
    """The key to use: the command-line option, else the environment variable, else the
    inventory's ``evidence:`` setting; None when none is configured."""
    if option is not None:
        return option
    if os.environ.get(env):
        return Path(os.environ[env])
    return inventory_key


# --- seal and verify --------------------------------------------------------------------------------

def _canonical(payload: dict[str, str]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


def seal(directory: Path, key_path: Path | None) -> bool:
    """Write SHA256SUMS over the folder and, with a key, SHA256SUMS.sig. Returns True if signed.
    A stale signature is removed when there is no key, so it can never vouch for new contents.

    The signature covers a small payload naming SHA256SUMS's own hash, the signing time and the
    key's fingerprint, so a changed byte anywhere in either file is caught and attributed."""
    text = sums_text(directory)
    (directory / SUMS).write_text(text, encoding="utf-8")
    sig_path = directory / SIGNATURE
    if key_path is None:
        sig_path.unlink(missing_ok=True)
        return False
    private = load_private_key(key_path)
    public = private.public_key()
    payload = {
        "algorithm": "ed25519",
        "signed_file": SUMS,
        "signed_file_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "key_fingerprint": fingerprint(public),
        "signed_utc": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    doc = {
        "payload": payload,
        "signature": base64.b64encode(private.sign(_canonical(payload))).decode(),
        "public_key": base64.b64encode(public.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode(),
    }
    sig_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return True


@dataclass
class Verification:
    directory: Path
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    signed: bool = False
    signature_ok: bool = False
    key_fingerprint: str | None = None
    key_pinned: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (not self.changed and not self.missing and not self.unlisted and self.signed
                and self.signature_ok and not self.problems)

    @property
    def intact(self) -> bool:
        return not (self.changed or self.missing or self.unlisted or self.problems)

    @property
    def exit_code(self) -> int:
        """0 intact and signed; 2 intact, unsigned and no key pinned; 1 anything else (with a
        pinned key, a missing signature is a failure: someone may have stripped it)."""
        if self.ok:
            return EXIT_OK
        if self.intact and not self.signed and not self.key_pinned:
            return EXIT_UNSIGNED
        return EXIT_FAILED

    def lines(self) -> list[str]:
        out = [f"CHANGED: {name} " + ("(does not match its signature)" if name in _NOT_SEALED
                                      else "(its SHA-256 differs from SHA256SUMS)")
               for name in self.changed]
        out += [f"MISSING: {name} (listed in SHA256SUMS, not in the folder)"
                for name in self.missing]
        out += [f"UNLISTED: {name} (in the folder, not in SHA256SUMS)" for name in self.unlisted]
        out += self.problems
        if not self.signed and self.key_pinned:
            out.append("UNSIGNED: no SHA256SUMS.sig, but a public key was pinned: the evidence "
                       "must be signed by it (a stripped signature looks exactly like this)")
        elif not self.signed:
            out.append("UNSIGNED: no SHA256SUMS.sig; nothing vouches for who wrote this evidence")
        elif self.signature_ok:
            pin = "pinned key" if self.key_pinned else \
                "key shipped with the evidence (pin one with --public-key)"
            out.append(f"signature OK ({self.key_fingerprint}, {pin})")
        else:
            out.append("BAD SIGNATURE: the signature does not hold for these files")
        if self.ok:
            out.append(f"OK: {self.directory} is intact and signed")
        return out


def _parse_sums(text: str) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            return None
        out[name] = digest
    return out


def verify(directory: Path, public_key: Path | None = None) -> Verification:
    """Check the signature over SHA256SUMS, then re-hash every evidence file against it."""
    result = Verification(directory)
    pinned = load_public_key(public_key) if public_key is not None else None
    result.key_pinned = pinned is not None
    sums_path = directory / SUMS
    if not sums_path.is_file():
        result.problems.append(f"NO {SUMS}: {directory} was never sealed")
        return result
    raw = sums_path.read_bytes()
    sums_ok = _check_signature(directory, raw, pinned, result)
    if result.signed and not sums_ok:
        # SHA256SUMS itself changed: its lines cannot be trusted to say which file did
        result.changed.append(SUMS)
        return result
    listed = _parse_sums(raw.decode("utf-8", errors="replace"))
    if listed is None:
        result.changed.append(f"{SUMS} (malformed)")
        return result
    files, odd = _walk(directory)
    present = set(files)
    result.problems += [f"UNEXPECTED: {name} (a link or special file, not evidence; not followed)"
                        for name in odd]
    for name, digest in sorted(listed.items()):
        if name not in present:
            result.missing.append(name)
        elif _file_sha256(directory / name) != digest:
            result.changed.append(name)
    result.unlisted = sorted(present - set(listed))
    return result


def _check_signature(directory: Path, sums: bytes, pinned: Ed25519PublicKey | None,
                     result: Verification) -> bool:
    """Fill in the signature part of ``result``; True when SHA256SUMS is the one signed."""
    sig_path = directory / SIGNATURE
    if not sig_path.is_file():
        return False
    result.signed = True
    try:
        sig = json.loads(sig_path.read_text(encoding="utf-8"))
        payload = {str(k): str(v) for k, v in sig["payload"].items()}
        signature = base64.b64decode(sig["signature"], validate=True)
        shipped = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(sig["public_key"], validate=True))
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        result.changed.append(SIGNATURE)
        result.problems.append(f"{SIGNATURE} is unreadable ({type(exc).__name__})")
        return True  # the sums may still be checked against the files; unsigned in effect
    key = shipped
    if pinned is not None:
        key = pinned
        if fingerprint(key) != fingerprint(shipped):
            result.problems.append(f"{SIGNATURE} carries key {fingerprint(shipped)}, not the "
                                   f"pinned {fingerprint(key)}")
    result.key_fingerprint = fingerprint(key)
    try:
        key.verify(signature, _canonical(payload))
    except InvalidSignature:
        result.changed.append(SIGNATURE)
        return True
    result.signature_ok = True
    return payload.get("signed_file_sha256") == hashlib.sha256(sums).hexdigest()
