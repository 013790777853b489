"""Callback signature verification, on its own: which secrets, which clock skew, which bytes.
(The header's syntax is in tests/api/test_edge_parsers.py, callbacks over HTTP in
test_callbacks.py.)"""

import pytest

from app.domain.errors import Unauthorized
from app.service.callbacks import MAX_SKEW_S, sign, verify_signature

TASK_ID = "0b8e3f7e-8d3a-4c55-9d6c-2f1f1c8f0a11"
BODY = b'{"progress": 5}'
NOW = 1_700_000_000


def test_while_rotating_both_the_current_and_the_previous_secret_are_accepted() -> None:
    for secret in ("new", "old"):
        header = sign(secret, TASK_ID, BODY, NOW)
        assert verify_signature(header, TASK_ID, BODY, ["new", "old"], now=NOW).timestamp == NOW
    with pytest.raises(Unauthorized, match="bad signature"):  # once the old one is dropped
        verify_signature(sign("old", TASK_ID, BODY, NOW), TASK_ID, BODY, ["new"], now=NOW)


def test_no_secret_means_every_callback_is_refused_saying_why() -> None:
    with pytest.raises(Unauthorized, match="TASKBEAT_CALLBACK_SECRET is not set"):
        verify_signature(sign("", TASK_ID, BODY, NOW), TASK_ID, BODY, [], now=NOW)


@pytest.mark.parametrize("skew_s", [-MAX_SKEW_S, 0, MAX_SKEW_S])
def test_a_clock_skew_up_to_the_limit_either_way_is_accepted(skew_s: int) -> None:
    header = sign("secret", TASK_ID, BODY, NOW)
    assert verify_signature(header, TASK_ID, BODY, ["secret"], now=NOW + skew_s)


@pytest.mark.parametrize("skew_s", [-MAX_SKEW_S - 1, MAX_SKEW_S + 1, -NOW])
def test_a_signature_from_too_far_in_the_past_or_future_is_stale(skew_s: int) -> None:
    header = sign("secret", TASK_ID, BODY, NOW)
    with pytest.raises(Unauthorized, match="stale"):
        verify_signature(header, TASK_ID, BODY, ["secret"], now=NOW + skew_s)


def test_the_raw_bytes_are_signed_not_their_meaning() -> None:
    header = sign("secret", TASK_ID, BODY, NOW)
    for same_json in (b'{"progress":5}', BODY + b"\n", b'{"progress": 5.0}'):
        with pytest.raises(Unauthorized, match="bad signature"):
            verify_signature(header, TASK_ID, same_json, ["secret"], now=NOW)


def test_the_signed_time_cannot_be_moved() -> None:
    digest = sign("secret", TASK_ID, BODY, NOW).partition(",v2=")[2]
    with pytest.raises(Unauthorized, match="bad signature"):
        verify_signature(f"t={NOW + 1},v2={digest}", TASK_ID, BODY, ["secret"], now=NOW)


def test_the_digest_is_accepted_in_either_case() -> None:
    digest = sign("secret", TASK_ID, BODY, NOW).partition(",v2=")[2]
    header = f"t={NOW},v2={digest.upper()}"
    assert verify_signature(header, TASK_ID, BODY, ["secret"], now=NOW).digest.hex() == digest
