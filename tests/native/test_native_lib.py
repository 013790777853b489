"""The ctypes binding against the real C library: every path the switches drive."""

import json
import select
import time
from collections.abc import Callable, Iterable

import pytest

from app.native import (
    EXPECTED_API_VERSION,
    MAX_INPUT_BYTES,
    InvalidHandleError,
    InvalidInputError,
    JobChange,
    JobState,
    NativeJobStatus,
    NativeLibrary,
    PollError,
    load_library,
)

Submit = Callable[[str], int]


def wait_until_finished(lib: NativeLibrary, handle: int, timeout_s: float = 5.0) -> NativeJobStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        status = lib.poll(handle)
        if status.state.finished or time.monotonic() > deadline:
            return status
        time.sleep(0.005)


def test_library_loads_once_with_expected_version(lib: NativeLibrary) -> None:
    assert load_library() is lib
    assert lib.version == EXPECTED_API_VERSION


def test_job_outputs_hello_world(lib: NativeLibrary, submit: Submit) -> None:
    handle = submit(json.dumps({"duration_ms": 200, "steps": 4}))

    status = wait_until_finished(lib, handle)

    assert status == NativeJobStatus(JobState.SUCCEEDED, 100, "hello world", None)


def test_progress_advances_over_time(lib: NativeLibrary, submit: Submit) -> None:
    handle = submit(json.dumps({"duration_ms": 600, "steps": 6, "output": "done"}))
    seen: list[int] = []

    status = lib.poll(handle)
    while not status.state.finished:
        seen.append(status.progress)
        time.sleep(0.02)
        status = lib.poll(handle)

    assert seen == sorted(seen)
    assert len(set(seen)) >= 4
    assert seen[0] == 0
    assert status.output == "done"
    assert status.progress == 100


@pytest.mark.parametrize("mode", ["sleep", "spin"])
def test_cancel_stops_the_job_within_100ms(lib: NativeLibrary, submit: Submit, mode: str) -> None:
    handle = submit(json.dumps({"duration_ms": 10_000, "mode": mode}))
    time.sleep(0.05)

    started = time.monotonic()
    lib.cancel(handle)
    status = wait_until_finished(lib, handle, timeout_s=1.0)
    elapsed_s = time.monotonic() - started

    assert status.state is JobState.CANCELLED
    assert status.error == "cancelled"
    assert status.output is None
    assert elapsed_s < 0.1
    lib.cancel(handle)  # cancelling a finished job is a no-op
    assert lib.poll(handle).state is JobState.CANCELLED


def test_fail_at_step_reports_the_message(lib: NativeLibrary, submit: Submit) -> None:
    handle = submit(
        json.dumps(
            {"duration_ms": 200, "steps": 5, "fail_at_step": 3, "fail_message": "disk on fire"}
        )
    )

    status = wait_until_finished(lib, handle)

    assert status == NativeJobStatus(JobState.FAILED, 40, None, "disk on fire")


def test_fail_at_step_has_a_default_message(lib: NativeLibrary, submit: Submit) -> None:
    handle = submit(json.dumps({"duration_ms": 0, "fail_at_step": 1}))

    assert lib.poll(handle).error == "injected failure at step 1"


def test_poll_errors_then_normal_polls(lib: NativeLibrary, submit: Submit) -> None:
    handle = submit(json.dumps({"duration_ms": 0, "poll_errors": 3}))

    for _ in range(3):
        with pytest.raises(PollError, match="injected poll error"):
            lib.poll(handle)

    assert lib.poll(handle).state is JobState.SUCCEEDED


def test_hang_runs_until_cancelled(lib: NativeLibrary, submit: Submit) -> None:
    handle = submit(json.dumps({"duration_ms": 100, "steps": 2, "hang": True}))
    time.sleep(0.3)

    assert lib.poll(handle) == NativeJobStatus(JobState.RUNNING, 50, None, None)
    lib.cancel(handle)
    assert lib.poll(handle).state is JobState.CANCELLED


def test_spin_job_burns_cpu_and_finishes(lib: NativeLibrary, submit: Submit) -> None:
    cpu_before = time.process_time()
    handle = submit(json.dumps({"duration_ms": 300, "mode": "spin"}))

    status = wait_until_finished(lib, handle)

    assert status == NativeJobStatus(JobState.SUCCEEDED, 100, "hello world", None)
    # A sleeping job burns next to no CPU; a loaded 2-core box may give the spinner
    # well under its 300 ms wall time, so the bound is low but still tells them apart.
    assert time.process_time() - cpu_before > 0.03


def test_freeing_a_running_job_cancels_it(lib: NativeLibrary) -> None:
    handles = [lib.submit(json.dumps({"duration_ms": 5000, "mode": m})) for m in ("sleep", "spin")]
    for handle in handles:
        lib.free(handle)
        with pytest.raises(InvalidHandleError):
            lib.poll(handle)


def test_freed_handle_is_refused(lib: NativeLibrary) -> None:
    handle = lib.submit("{}")
    lib.free(handle)

    with pytest.raises(InvalidHandleError, match="unknown or freed handle"):
        lib.poll(handle)
    with pytest.raises(InvalidHandleError):
        lib.cancel(handle)
    with pytest.raises(InvalidHandleError):
        lib.free(handle)


@pytest.mark.parametrize("handle", [0, -1, 2**64, 12345, 2**63 + 7])
def test_bogus_handles_are_refused(lib: NativeLibrary, handle: int) -> None:
    with pytest.raises(InvalidHandleError):
        lib.poll(handle)
    with pytest.raises(InvalidHandleError):
        lib.free(handle)


@pytest.mark.parametrize(
    ("input_json", "message"),
    [
        ("", "input is empty; expected a JSON object"),
        ("[1, 2]", "input must be a JSON object"),
        ('{"duration_ms": 10', "expected ',' or '}'"),
        ('{"colour": "red"}', 'unknown field "colour"'),
        ('{"steps": "ten"}', 'field "steps" must be an integer, not a string'),
        ('{"duration_ms": 1.5}', 'field "duration_ms" must be an integer'),
        ('{"steps": 0}', 'field "steps" must be between 1 and 1000'),
        ('{"duration_ms": -5}', 'field "duration_ms" must be between 0 and 86400000'),
        ('{"mode": "turbo"}', 'field "mode" must be "sleep" or "spin"'),
        ('{"hang": "yes"}', 'field "hang" must be a boolean'),
        ('{"output": {"a": 1}}', "nested objects and arrays are not supported"),
        ('{"steps": 2, "fail_at_step": 3}', "must not exceed steps"),
        ('{"steps": 2, "steps": 3}', 'duplicate field "steps"'),
        ('{"output": "\\ud800"}', "lone high surrogate"),
        ("{} trailing", "unexpected data after the JSON object"),
        ("\x00\xff\x01", "input must be a JSON object"),
        ('{"output": "\ud800"}', "input is not valid UTF-8"),
        ("{" + " " * MAX_INPUT_BYTES + "}", "the limit is 65536 bytes"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    lib: NativeLibrary, input_json: str, message: str
) -> None:
    with pytest.raises(InvalidInputError) as validated:
        lib.validate(input_json)
    with pytest.raises(InvalidInputError) as submitted:
        lib.submit(input_json)

    assert message in str(validated.value)
    assert str(submitted.value) == str(validated.value)


def test_validate_accepts_every_switch(lib: NativeLibrary) -> None:
    lib.validate(
        json.dumps(
            {
                "duration_ms": 10,
                "steps": 5,
                "mode": "spin",
                "fail_at_step": 5,
                "fail_message": "boom",
                "poll_errors": 2,
                "hang": False,
                "output": "hi",
            }
        )
    )
    lib.validate(json.dumps({"steps": None}))  # null means the default


def test_long_unicode_output_arrives_whole(lib: NativeLibrary, submit: Submit) -> None:
    output = 'héllo wörld ✓ 🎉 "quoted" \\ \n' * 1500  # ~50 KB, past the first buffer
    handle = submit(json.dumps({"duration_ms": 0, "output": output}, ensure_ascii=False))

    status = lib.poll(handle)

    assert status.output == output


def drain_mine(lib: NativeLibrary, handles: Iterable[int]) -> list[JobChange]:
    """The changes of `handles` one drain returns (jobs other tests left may change too)."""
    mine = set(handles)
    return [change for change in lib.drain_changes() if change.handle in mine]


def test_drain_changes_reports_each_finished_job_once(lib: NativeLibrary, submit: Submit) -> None:
    lib.drain_changes()  # whatever earlier tests left
    handles = [submit('{"duration_ms": 0}') for _ in range(1500)]

    drained = drain_mine(lib, handles)

    assert [c[:3] for c in drained] == [(handle, JobState.SUCCEEDED, 100) for handle in handles]
    assert drain_mine(lib, handles) == []


def test_steps_since_the_last_drain_come_as_one_change(lib: NativeLibrary, submit: Submit) -> None:
    handle = submit(json.dumps({"duration_ms": 100, "steps": 10, "hang": True}))
    time.sleep(0.3)  # nine steps done, none drained

    assert drain_mine(lib, [handle]) == [JobChange(handle, JobState.RUNNING, 90, 0)]
    asked_us = time.time_ns() // 1000
    lib.cancel(handle)
    [cancelled] = drain_mine(lib, [handle])
    assert cancelled[:3] == (handle, JobState.CANCELLED, 90)
    assert asked_us <= cancelled.finished_at_us <= time.time_ns() // 1000


@pytest.mark.parametrize(
    ("switches", "change"),
    [
        ({"steps": 2}, (JobState.SUCCEEDED, 100)),
        ({"steps": 4, "fail_at_step": 4}, (JobState.FAILED, 75)),
    ],
)
def test_a_finish_right_after_a_step_is_drained(
    lib: NativeLibrary, submit: Submit, switches: dict[str, int], change: tuple[JobState, int]
) -> None:
    handle = submit(json.dumps({"duration_ms": 40, **switches}))
    time.sleep(0.15)

    assert [c[:3] for c in drain_mine(lib, [handle])] == [(handle, *change)]


def test_ten_thousand_jobs_of_ten_steps_drain_without_loss(
    lib: NativeLibrary, submit: Submit
) -> None:
    lib.drain_changes()
    handles = [submit(json.dumps({"duration_ms": 200 + k * 37 % 300})) for k in range(10_000)]
    seen: dict[int, list[JobChange]] = {handle: [] for handle in handles}
    unfinished = set(handles)
    readable = select.poll()
    readable.register(lib.notify_fd(), select.POLLIN)
    deadline = time.monotonic() + 20
    while unfinished and time.monotonic() < deadline:
        readable.poll(100)
        for change in drain_mine(lib, seen):
            seen[change.handle].append(change)
            if change.state.finished:
                unfinished.discard(change.handle)

    assert not unfinished
    for handle, changes in seen.items():
        progress = [change.progress for change in changes]
        assert progress == sorted(set(progress)), (handle, changes)  # each change moved on
        assert len(changes) <= 10  # coalesced: at most one per step
        assert changes[-1][:3] == (handle, JobState.SUCCEEDED, 100)
        assert all(change.finished_at_us == 0 for change in changes[:-1])  # steps only
        assert not any(change.state.finished for change in changes[:-1])
