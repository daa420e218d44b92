"""The token key ring's file: format 2 written and read back, format 1 read as a ring of
one unmarked key, every malformed file named with what is wrong, and a file re-read when
it is replaced (and kept as it was when it becomes unreadable)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlform.serving.keyring import UNMARKED, KeyRing, RingFile, TokenKey, dump, parse, read

CURRENT = TokenKey("3f2a9c1b", bytes(range(32)))
PREVIOUS = TokenKey("a41e07d2", bytes(range(32, 64)), keep_until=1_765_000_000.0)


def test_a_ring_is_written_and_read_back() -> None:
    ring = KeyRing(CURRENT, (PREVIOUS,), made_for="d1")
    text = dump(ring)
    assert json.loads(text) == {
        "format": 2,
        "made_for": "d1",
        "current": "3f2a9c1b",
        "keys": [
            {"kid": "3f2a9c1b", "key": bytes(range(32)).hex()},
            {"kid": "a41e07d2", "key": bytes(range(32, 64)).hex(), "keep_until": 1_765_000_000.0},
        ],
        "token_key": bytes(range(32)).hex(),  # as format 1 had it, for an older server
    }
    assert parse(text) == ring
    assert "TokenKey(kid='3f2a9c1b', keep_until=None)" in repr(ring)  # and not the secret
    assert bytes(range(32)).hex() not in repr(ring)


def test_a_previous_key_is_found_until_its_time_only() -> None:
    ring = KeyRing(CURRENT, (PREVIOUS,))
    assert ring.find("3f2a9c1b", 2e9) == CURRENT
    assert ring.find("a41e07d2", 1_765_000_000.0) == PREVIOUS
    assert ring.find("a41e07d2", 1_765_000_000.5) is None
    assert ring.find(UNMARKED, 0) is None


def test_a_format_1_file_is_a_ring_of_its_one_key_unmarked() -> None:
    text = json.dumps({"token_key": bytes(range(32)).hex(), "keys": "d1"})
    assert parse(text) == KeyRing(TokenKey(UNMARKED, bytes(range(32))), made_for="d1")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "it is not JSON (Expecting value: line 1 column 1 (char 0))"),
        ("[]", "it is not a JSON object"),
        ("{}", "token_key must be 64 hex digits or more"),
        ('{"token_key": "abcd"}', "token_key must be 64 hex digits or more"),
        (
            '{"format": 3}',
            "its format is 3, which this mlform does not know (it reads 2); "
            "a newer mlform wrote it",
        ),
        ('{"format": 2, "keys": []}', "keys must be a non-empty list"),
        (
            '{"format": 2, "current": "a", "keys": [{"kid": "a", "key": "00"}]}',
            "keys[0].key must be 64 hex digits or more",
        ),
        (
            '{"format": 2, "current": "a", "keys": [{"kid": "", "key": "' + "0" * 64 + '"}]}',
            "keys[0].kid must be a string of 1 to 32 characters",
        ),
        (
            '{"format": 2, "current": "b", "keys": [{"kid": "a", "key": "' + "0" * 64 + '"}]}',
            "current must name one key of keys, with no keep_until",
        ),
        (
            '{"format": 2, "current": "a", "keys": [{"kid": "a", "key": "'
            + "0" * 64
            + '", "keep_until": "soon"}]}',
            "keys[0].keep_until must be a time (seconds since 1970)",
        ),
    ],
)
def test_a_malformed_file_says_what_is_wrong(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "ring.json"
    path.write_text(text)
    with pytest.raises(ValueError) as raised:
        read(path)
    assert str(raised.value) == (
        f"{path} holds no usable token keys: {problem} (`mlform apply` writes it under "
        ".mlform/secrets/tokens/)"
    )


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as raised:
        RingFile(tmp_path / "none.json")
    assert str(raised.value) == (
        f"cannot read the token key file {tmp_path / 'none.json'}: No such file or directory"
    )


def test_a_ring_file_is_re_read_when_replaced_and_kept_when_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    path.write_text(dump(KeyRing(CURRENT)))
    watched = RingFile(path)
    assert watched.ring() == KeyRing(CURRENT)
    rotated = KeyRing(TokenKey("b0b0b0b0", b"n" * 32), (PREVIOUS,))
    partial = tmp_path / "partial"
    partial.write_text(dump(rotated))
    os.replace(partial, path)  # as mlform writes it
    assert watched.ring() == rotated
    path.write_text("{")
    assert watched.ring() == rotated
    path.unlink()
    assert watched.ring() == rotated
