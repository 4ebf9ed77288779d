"""`verify` closes two gaps: every file in the folder counts, whatever its name, and with a
pinned key a missing signature is a failure (a forger who rewrote the evidence, regenerated
SHA256SUMS and deleted the signature must not pass for an honest unsigned folder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_evidence import scripted

from harness import signing
from harness.cli import main


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, Path]:
    return signing.keygen(tmp_path / "keys" / "drill")


@pytest.fixture
def signed(tmp_path: Path, key: tuple[Path, Path]) -> Path:
    return scripted(tmp_path, signing_key=key[0]).directory


@pytest.mark.parametrize("name", ["evil.tmp", "evidence.json.tmp", ".hidden", "sub/x.tmp",
                                  "SHA256SUMS.tmp", "findings.yaml"])
def test_an_added_file_of_any_name_fails(signed: Path, key: tuple[Path, Path], name: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(signed), "--public-key", str(key[1])]) == 0
    path = signed / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("planted")
    result = signing.verify(signed, key[1])
    assert result.unlisted == [name] and not result.ok and result.exit_code == 1
    capsys.readouterr()
    assert main(["verify", str(signed), "--public-key", str(key[1])]) == 1
    assert f"UNLISTED: {name}" in capsys.readouterr().out


def test_a_link_or_fifo_in_the_folder_fails_and_is_not_followed(signed: Path,
                                                                 key: tuple[Path, Path]) -> None:
    (signed / "passwd").symlink_to("/etc/passwd")
    os.mkfifo(signed / "pipe")  # reading it would block forever
    result = signing.verify(signed, key[1])
    assert result.exit_code == 1
    assert any("passwd" in p for p in result.problems) and any("pipe" in p
                                                               for p in result.problems)


def test_a_stripped_signature_fails_when_a_key_is_pinned(signed: Path, key: tuple[Path, Path],
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    doc = json.loads((signed / "evidence.json").read_text())
    doc["verdict"] = "PASS"
    (signed / "evidence.json").write_text(json.dumps(doc))
    signing.seal(signed, None)  # SHA256SUMS regenerated, signature removed
    assert not (signed / signing.SIGNATURE).exists()
    pinned = signing.verify(signed, key[1])
    assert pinned.intact and not pinned.signed and pinned.exit_code == 1
    assert main(["verify", str(signed), "--public-key", str(key[1])]) == 1
    assert "a public key was pinned" in capsys.readouterr().out
    monkeypatch.setenv(signing.PUBLIC_KEY_ENV, str(key[1]))  # pinned through the environment
    assert main(["verify", str(signed)]) == 1
    monkeypatch.delenv(signing.PUBLIC_KEY_ENV)
    # without a pinned key it is what it looks like: intact, unsigned, exit 2
    assert main(["verify", str(signed)]) == 2


def test_an_unreadable_pinned_key_is_a_usage_error(signed: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "not-a-key.pub"
    bad.write_text("hello")
    assert main(["verify", str(signed), "--public-key", str(bad)]) == 3
    assert "cannot read the public key" in capsys.readouterr().err
