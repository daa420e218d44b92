"""Secret values hidden as `***`, in a whole text or in chunks cut anywhere."""

from __future__ import annotations

import base64
import json

from hypothesis import given
from hypothesis import strategies as st

from mlform.masking import MASK, MIN_LENGTH, Masker


def masked_in_chunks(masker: Masker, chunks: list[bytes]) -> bytes:
    stream = masker.stream()
    return b"".join(stream.feed(chunk) for chunk in chunks) + stream.flush()


def by_brute_force(patterns: tuple[bytes, ...], data: bytes) -> bytes:
    """Mark every byte any occurrence of any pattern covers; each run of marks is ***."""
    hidden = [False] * len(data)
    for pattern in patterns:
        for start in range(len(data) - len(pattern) + 1):
            if data[start : start + len(pattern)] == pattern:
                hidden[start : start + len(pattern)] = [True] * len(pattern)
    out = bytearray()
    for i, byte in enumerate(data):
        if not hidden[i]:
            out.append(byte)
        elif i == 0 or not hidden[i - 1]:
            out += MASK
    return bytes(out)


def test_every_occurrence_becomes_three_stars() -> None:
    masker = Masker(["hunter22"])
    assert masker.mask(b"password hunter22, again hunter22\n") == b"password ***, again ***\n"


def test_overlapping_and_touching_values_become_one_run() -> None:
    masker = Masker(["abcdef", "cdefgh"])
    assert masker.mask(b"[abcdefgh]") == b"[***]"
    assert masker.mask(b"[abcdefabcdef]") == b"[***]"
    assert masker.mask(b"[abcdef-abcdef]") == b"[***-***]"


def test_the_longest_value_wins_where_one_contains_another() -> None:
    masker = Masker(["token", "token-with-suffix"])
    assert masker.mask(b"a token-with-suffix b token") == b"a *** b ***"


def test_values_shorter_than_the_minimum_are_not_masked() -> None:
    assert MIN_LENGTH == 4
    masker = Masker(["abc", "", "abcd"])
    assert masker.mask(b"abc abcd abcde") == b"abc *** ***e"
    assert not Masker(["a", "ab", "abc"])
    assert Masker([]).mask(b"text") == b"text"


def test_each_line_of_a_value_of_several_lines_is_masked() -> None:
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----"
    masker = Masker([key])
    assert masker.mask(f"{key}\n".encode()) == b"***\n"
    assert masker.mask(b"line: MIIEvQIBADANBg.") == b"line: ***."


def test_json_percent_and_base64_forms_are_masked() -> None:
    value = 'pa"ss/w\u00f6rd'
    masker = Masker([value])
    assert masker.mask(json.dumps({"password": value}).encode()) == b'{"password": "***"}'
    assert masker.mask(b"https://h/?p=pa%22ss%2Fw%C3%B6rd&x=1") == b"https://h/?p=***&x=1"
    alone = base64.b64encode(value.encode())
    assert masker.mask(b"Basic " + alone) == b"Basic ***"
    # At each alignment inside a longer base64 text, all but the bits the value shares a
    # character with its neighbours: "dTp" holds "u:" and 2 bits of the value's "p".
    shown = {
        user: masker.mask(base64.b64encode(f"{user}:{value}".encode()))
        for user in ("u", "us", "use")
    }
    assert shown == {"u": b"dTp***A==", "us": b"dXM6***", "use": b"dXNlOn***"}


def test_a_value_split_across_chunks_is_held_back_then_masked() -> None:
    stream = Masker(["s3cr3t-value"]).stream()
    assert stream.feed(b"token: s3cr3") == b"token: "
    assert stream.pending == 5
    assert stream.feed(b"t-value and more\n") == b"*** and more\n"
    assert stream.pending == 0


def test_a_tail_that_turns_out_not_to_be_a_value_is_let_out() -> None:
    stream = Masker(["s3cr3t-value"]).stream()
    assert stream.feed(b"epoch 3: s3c") == b"epoch 3: "
    assert stream.feed(b"ond") == b"s3cond"
    assert stream.feed(b" s3") == b" "
    assert stream.flush() == b"s3"


def test_nothing_that_cannot_start_a_value_is_held() -> None:
    stream = Masker(["s3cr3t-value"]).stream()
    assert stream.feed(b"loss=0.25\n") == b"loss=0.25\n"
    assert stream.feed(b"progress 40%") == b"progress 40%"
    assert stream.pending == 0


values = st.lists(st.text(alphabet="ab\u00e9\n", min_size=1, max_size=8), min_size=1, max_size=3)


@st.composite
def texts_with_values(draw: st.DrawFn) -> tuple[list[str], bytes, list[int]]:
    secrets = draw(values)
    pieces = draw(st.lists(st.one_of(st.sampled_from(secrets), st.text("abé*\n", max_size=5))))
    data = "".join(pieces).encode()
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    return secrets, data, cuts


@given(texts_with_values())
def test_any_cut_of_any_text_masks_as_the_whole_text_does(
    case: tuple[list[str], bytes, list[int]],
) -> None:
    secrets, data, cuts = case
    masker = Masker(secrets)
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    whole = masker.mask(data)
    assert masked_in_chunks(masker, chunks) == whole
    assert whole == by_brute_force(masker.patterns, data)
    for secret in secrets:
        if len(secret) >= MIN_LENGTH:
            assert secret.encode() not in whole


@given(texts_with_values())
def test_byte_by_byte_masks_as_the_whole_text_does(
    case: tuple[list[str], bytes, list[int]],
) -> None:
    secrets, data, _ = case
    masker = Masker(secrets)
    assert masked_in_chunks(masker, [data[i : i + 1] for i in range(len(data))]) == (
        masker.mask(data)
    )
