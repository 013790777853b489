"""The edge parsers, one by one: event ids, the signature header, cursors, task ids, JSON."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from app.api.params import parse_event_id
from app.core import strict_json
from app.domain.errors import InvalidCursor, InvalidRequest, Unauthorized
from app.domain.models import StoredTask, TaskStatus, is_task_id, new_task_id
from app.service.callbacks import parse_signature_header, sign, verify_signature
from app.store.cursors import decode_cursor, encode_cursor

TASK_ID = "0b8e3f7e-8d3a-4c55-9d6c-2f1f1c8f0a11"
HEX = "ab" * 32
ODD_NUMBERS = ["-1", "+1", " 1", "1 ", "1_000", "0x10", "1.0", "²", "١٢", "\uff11", "9" * 19, "1e3"]


@pytest.mark.parametrize(("value", "expected"), [(None, 0), ("", 0), ("0", 0), ("2500", 2500)])
def test_event_ids_that_parse(value: str | None, expected: int) -> None:
    assert parse_event_id(value) == expected


@pytest.mark.parametrize("value", [*ODD_NUMBERS, "9" * 5000, "abc", "é"])
def test_odd_event_ids_are_invalid_requests(value: str) -> None:
    with pytest.raises(InvalidRequest, match="ASCII digits"):
        parse_event_id(value)


def test_a_signature_header_that_parses() -> None:
    signature = parse_signature_header(f"t=1700000000, v2={HEX.upper()}")
    assert signature.timestamp == 1700000000
    assert signature.digest == bytes.fromhex(HEX)
    assert signature.replay_key == ("1700000000", HEX)  # one replay key whatever the case


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        ",",
        "t=1700000000",
        f"v2={HEX}",
        f"t=,v2={HEX}",
        *(f"t={t},v2={HEX}" for t in ODD_NUMBERS if t != "1 "),  # space around "," is fine
        f"t={'1' * 5000},v2={HEX}",
        "t=1700000000,v2=00",
        "t=1700000000,v2=é",
        f"t=1700000000,v2={'é' * 64}",
        f"t=1700000000,v2={HEX[:-2]} a",
        f"t=1700000000,v2={HEX}0",
        f"t=1700000000,v2={'g' * 64}",
        f"t=1700000000,v2={HEX},v2={HEX}",
        f"t=1,t=2,v2={HEX}",
        f"t=1700000000,v2={HEX},extra=1",
        f"t=1700000000,v2={HEX},junk",
    ],
)
def test_odd_signature_headers_are_unauthorized(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        parse_signature_header(header)


def test_a_v1_header_says_the_scheme_changed() -> None:
    with pytest.raises(Unauthorized, match="v1 signatures are no longer accepted"):
        parse_signature_header(f"t=1700000000,v1={HEX}")


def test_a_signature_binds_time_task_and_body() -> None:
    body, now = b'{"progress": 5}', 1_700_000_000
    header = sign("secret", TASK_ID, body, now)
    signed = f"{now}.{TASK_ID}.".encode() + body
    expected = hmac.new(b"secret", signed, hashlib.sha256).hexdigest()
    assert header == f"t={now},v2={expected}"  # what the README's engine example computes
    assert verify_signature(header, TASK_ID, body, ["other", "secret"], now=now).timestamp == now
    other_task = new_task_id()
    for task_id, raw, at in ((other_task, body, now), (TASK_ID, b"{}", now)):
        with pytest.raises(Unauthorized, match="bad signature"):
            verify_signature(header, task_id, raw, ["secret"], now=at)
    with pytest.raises(Unauthorized, match="stale"):
        verify_signature(header, TASK_ID, body, ["secret"], now=now + 301)


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_round_trips() -> None:
    created = datetime(2026, 5, 1, 12, 30, 1, 250, tzinfo=UTC)
    task = StoredTask(
        task_id=TASK_ID, algorithm="hello", status=TaskStatus.PENDING, timeout_s=1,
        created_at=created,
    )  # fmt: skip
    assert decode_cursor(encode_cursor(task)) == (created, TASK_ID)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "é",
        "a" * 201,
        _cursor("no separator"),
        _cursor(f"not a time|{TASK_ID}"),
        _cursor("2026-05-01T12:00:00+00:00|not-a-uuid"),
        _cursor(f"2026-05-01T12:00:00|{TASK_ID}"),  # naive
        _cursor(f"2026-05-01T17:00:00+05:00|{TASK_ID}"),  # not the form given out
        _cursor(f"9999-12-31T23:59:59-05:00|{TASK_ID}"),  # overflows converting to UTC
        _cursor(f"0001-01-01T00:00:00+05:00|{TASK_ID}"),
        _cursor(f"9999-12-31T23:59:59.999999+00:00|{TASK_ID}"),
        _cursor(f"0001-01-01T00:00:00+00:00|{TASK_ID}"),
        _cursor(f"2026-05-01T12:00:00+00:00|{TASK_ID.upper()}"),
        _cursor(f"2026-05-01T12:00:00+00:00|{TASK_ID}") + "==",
        " " + _cursor(f"2026-05-01T12:00:00+00:00|{TASK_ID}"),
        base64.b64encode(f"2026-05-01T12:00:00+00:00|{TASK_ID}?>".encode()).decode(),
    ],
)
def test_odd_cursors_are_invalid_cursors(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)


@pytest.mark.parametrize(
    "text", ["", "nope", TASK_ID.upper(), "{" + TASK_ID + "}", TASK_ID.replace("-", ""),
             "urn:uuid:" + TASK_ID, TASK_ID[:-1] + "\u0661", TASK_ID + "\x00"],
)  # fmt: skip
def test_odd_task_ids(text: str) -> None:
    assert not is_task_id(text)
    assert is_task_id(new_task_id())


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "nested too deep"),
        (b"[" * 65 + b"]" * 65, "nested too deep"),
        (b"1" + b"0" * 5000, "out of range"),
        (b"1e309", "out of range"),
        (b"-1e309", "out of range"),
        (b"NaN", "not valid JSON"),
        (b"Infinity", "not valid JSON"),
        (b'"\xff"', "UTF-8"),
        (b'"\\ud800"', "UTF-8"),
        (b'{"a": "x\\u0000"}', "NUL"),
        (b'{"a\\u0000": 1}', "NUL"),
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_json_the_service_cannot_store_is_refused(raw: bytes, words: str) -> None:
    with pytest.raises(strict_json.JSONRefused, match=words):
        strict_json.loads(raw)


def test_storable_json_parses() -> None:
    nested = b"[" * 64 + b"]" * 64
    assert strict_json.loads(b'{"a": [1, 2.5, "\\u00e9", null, true]}') == {
        "a": [1, 2.5, "é", None, True]
    }
    assert strict_json.loads(nested) is not None
