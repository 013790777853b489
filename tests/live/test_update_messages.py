"""The update messages replicas exchange, and the event ids every replica gives a change:
pure functions, so each rule is checked on its own."""

import json

import pytest

from app.domain.models import TaskStatus
from app.live.updates import (
    Update,
    UpdateKind,
    decode_message,
    encode_message,
    event_id,
    message_prefix,
    own_statuses,
)

PENDING, RUNNING = TaskStatus.PENDING, TaskStatus.RUNNING
STATUS, PROGRESS, RESYNC = UpdateKind.STATUS, UpdateKind.PROGRESS, UpdateKind.RESYNC


@pytest.mark.parametrize(
    "path",
    [
        # (status, attempt, progress) as a task's readers see it change, in order
        [(PENDING, 0, 0), (RUNNING, 1, 0), (RUNNING, 1, 50), (RUNNING, 1, 100),
         (TaskStatus.SUCCEEDED, 1, 100)],
        [(PENDING, 0, 0), (TaskStatus.CANCELLED, 0, 0)],
        # taken over after its replica died: the rerun counts up from the first run's ids
        [(PENDING, 0, 0), (RUNNING, 1, 40), (PENDING, 1, 40), (RUNNING, 2, 0),
         (RUNNING, 2, 10), (TaskStatus.FAILED, 2, 10)],
        [(RUNNING, 3, 90), (TaskStatus.TIMED_OUT, 3, 0)],
    ],
)  # fmt: skip
def test_event_ids_grow_with_every_visible_change(path: list[tuple[TaskStatus, int, int]]) -> None:
    ids = [event_id(status, attempt, progress) for status, attempt, progress in path]
    assert ids == sorted(set(ids)), ids


def test_progress_out_of_range_cannot_reach_the_next_phase() -> None:
    assert event_id(RUNNING, 1, 10**6) == event_id(RUNNING, 1, 100)
    assert event_id(RUNNING, 1, -5) == event_id(RUNNING, 1, 0)
    assert event_id(PENDING, 0, 10**6) < event_id(RUNNING, 1, 0)
    assert event_id(RUNNING, 1, 10**6) < event_id(TaskStatus.SUCCEEDED, 1, 0)


def test_a_message_carries_status_changes_and_progress_moves() -> None:
    updates = [
        Update("t1", STATUS, "running", attempt=1, progress=0, origin="ignored"),
        Update("t2", PROGRESS, "running", attempt=1, progress=10),
        Update("t2", PROGRESS, "running", attempt=1, progress=20),
        Update("t1", RESYNC),
        Update("t1", STATUS, "succeeded", attempt=1, progress=100),
    ]
    origin, statuses, progress = decode_message(encode_message("replica-a", updates))
    assert origin == "replica-a"
    assert statuses == [  # in order, each stamped with the message's origin
        Update("t1", STATUS, "running", 1, 0, "replica-a"),
        Update("t1", RESYNC, None, 0, 0, "replica-a"),
        Update("t1", STATUS, "succeeded", 1, 100, "replica-a"),
    ]
    assert progress == {"t2": [1, 20]}  # only the last move of each task travels


def test_a_heartbeat_of_many_runs_is_one_compact_message() -> None:
    moves = [Update(f"task-{n}", PROGRESS, "running", 1, n % 101) for n in range(1000)]
    message = encode_message("replica-a", moves)
    assert len(message) < 25 * len(moves)  # no field names repeated per run
    assert decode_message(message)[2] == {f"task-{n}": [1, n % 101] for n in range(1000)}


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "null",
        "5",
        '"text"',
        "[]",
        "{}",
        json.dumps({"origin": "a", "statuses": []}),
        json.dumps({"origin": "a", "progress": {}}),
        json.dumps({"origin": "a", "statuses": 5, "progress": {}}),
        json.dumps({"origin": "a", "statuses": [["t1", "status"]], "progress": {}}),
        json.dumps({"origin": "a", "statuses": [["t1", "gone", None, 1, 0]], "progress": {}}),
        json.dumps({"origin": "a", "statuses": [], "progress": [1, 2]}),
        json.dumps({"origin": "a", "statuses": [], "progress": "abc"}),
    ],
)
def test_a_malformed_message_decodes_to_nothing(raw: str) -> None:
    assert decode_message(raw) == ("", [], {})


def test_a_message_with_a_malformed_progress_value_decodes_to_nothing() -> None:
    raw = json.dumps({"origin": "a", "statuses": [], "progress": {"t1": 5}})
    assert decode_message(raw) == ("", [], {})


def test_a_replica_reads_only_the_statuses_of_its_own_messages() -> None:
    updates = [
        Update("t1", STATUS, "running", attempt=1, progress=0),
        Update("t2", PROGRESS, "running", attempt=1, progress=30),
    ]
    own = encode_message("replica-a", updates)
    prefix = message_prefix("replica-a")

    assert own_statuses(own, prefix=prefix, origin="replica-a") == [
        Update("t1", STATUS, "running", 1, 0, "replica-a")
    ]
    foreign = encode_message("replica-ab", updates)  # a prefix of its id is another replica
    assert own_statuses(foreign, prefix=prefix, origin="replica-a") is None
    assert own_statuses(prefix + "[[1", prefix=prefix, origin="replica-a") is None
