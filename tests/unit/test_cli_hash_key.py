"""``mdgw hash-key KEY``: the one subcommand without logging flags must still run."""

from __future__ import annotations

import hashlib

import pytest

from mdgw.cli import main


def test_hash_key_prints_the_sha256_digest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash-key", "s3cret"]) == 0
    assert capsys.readouterr().out == hashlib.sha256(b"s3cret").hexdigest() + "\n"
