"""Sealing and signing evidence: one changed byte in any file is caught and the file named;
unsigned evidence says so and does not verify; the private key never lands in the evidence."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from test_evidence import scripted

from harness import signing
from harness.cli import main
from harness.errors import UsageError


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, Path]:
    return signing.keygen(tmp_path / "keys" / "drill")


@pytest.fixture
def signed(tmp_path: Path, key: tuple[Path, Path]) -> Path:
    result = scripted(tmp_path, signing_key=key[0])
    assert (result.directory / signing.SIGNATURE).is_file()
    return result.directory


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2
    data[i] = ord("0") if data[i] != ord("0") else ord("1")
    path.write_bytes(bytes(data))


def test_keygen_writes_a_private_key_only_its_owner_reads(key: tuple[Path, Path]) -> None:
    private, public = key
    assert private.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    with pytest.raises(UsageError, match="refusing to overwrite"):
        signing.keygen(private.with_suffix(""))


def test_intact_signed_evidence_verifies(signed: Path, key: tuple[Path, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    result = signing.verify(signed, key[1])
    assert result.ok and result.key_pinned, result.lines()
    assert main(["verify", str(signed), "--public-key", str(key[1])]) == 0
    assert "intact and signed" in capsys.readouterr().out


def test_every_evidence_file_is_listed(signed: Path) -> None:
    listed = {line.split("  ", 1)[1] for line in (signed / "SHA256SUMS").read_text().splitlines()}
    assert listed == {"evidence.json", "journal.jsonl", "report.html", "junit.xml",
                      "summary.md"}


def test_one_changed_byte_in_any_file_fails_and_names_it(signed: Path, key: tuple[Path, Path],
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    originals = {p.name: p.read_bytes() for p in signed.iterdir()}
    assert signing.SUMS in originals and signing.SIGNATURE in originals
    for name, data in originals.items():
        flip_one_byte(signed / name)
        result = signing.verify(signed, key[1])
        assert not result.ok, name
        assert result.changed == [name], (name, result.lines())
        assert main(["verify", str(signed)]) == 1
        assert f"CHANGED: {name}" in capsys.readouterr().out
        (signed / name).write_bytes(data)
    assert signing.verify(signed, key[1]).ok


def test_added_and_removed_files_are_named(signed: Path) -> None:
    (signed / "extra.txt").write_text("planted")
    (signed / "summary.md").unlink()
    result = signing.verify(signed)
    assert result.unlisted == ["extra.txt"] and result.missing == ["summary.md"]
    assert not result.ok


def test_a_different_key_does_not_verify(signed: Path, tmp_path: Path) -> None:
    _, other_pub = signing.keygen(tmp_path / "other")
    result = signing.verify(signed, other_pub)
    assert not result.ok and result.problems


def test_a_forger_who_re_signs_with_their_own_key_fails_against_the_pinned_key(
        signed: Path, key: tuple[Path, Path], tmp_path: Path) -> None:
    doc = json.loads((signed / "evidence.json").read_text())
    doc["verdict"] = "PASS"
    (signed / "evidence.json").write_text(json.dumps(doc))
    forged, _ = signing.keygen(tmp_path / "forger")
    signing.seal(signed, forged)
    assert signing.verify(signed).signature_ok  # self-consistent with the key it ships ...
    assert not signing.verify(signed, key[1]).ok  # ... but not signed by the pinned key


def test_unsigned_evidence_says_so_and_exits_non_zero(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    d = scripted(tmp_path).directory
    assert not (d / signing.SIGNATURE).exists()
    assert main(["verify", str(d)]) == 2
    assert "UNSIGNED" in capsys.readouterr().out
    (d / "SHA256SUMS").unlink()
    assert main(["verify", str(d)]) == 1
    assert "never sealed" in capsys.readouterr().out


def test_rerender_of_signed_evidence_needs_the_key(signed: Path, key: tuple[Path, Path],
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(signing.KEY_ENV, raising=False)
    assert main(["report", str(signed), "--finding", "x"]) == 3
    assert "is signed" in capsys.readouterr().err
    assert main(["report", str(signed), "--signing-key", str(key[0])]) == 0
    assert signing.verify(signed, key[1]).ok
    monkeypatch.setenv(signing.KEY_ENV, str(key[0]))
    assert main(["report", str(signed), "--finding", "the runbook's SSH key had expired"]) == 0
    assert signing.verify(signed, key[1]).ok
    assert "findings.yaml" in (signed / "SHA256SUMS").read_text()


def test_the_private_key_never_appears_in_the_evidence(signed: Path, key: tuple[Path, Path]
                                                       ) -> None:
    private = signing.load_private_key(key[0])
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    needles = [raw, base64.b64encode(raw), raw.hex().encode(), key[0].read_bytes().strip(),
               key[0].read_bytes().splitlines()[1]]
    for path in signed.iterdir():
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, path.name
