"""GroupCommit: writes that arrive together share one apply; each caller gets its own
result, waits only for its own batch, and no write is lost when a leader is cancelled."""

from collections.abc import Sequence

import anyio
import anyio.lowlevel
import pytest

from app.core.batching import GroupCommit, Outbox

pytestmark = pytest.mark.anyio


class Recorder:
    def __init__(self, delay_s: float = 0.0, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.delay_s = delay_s
        self.fail_on = fail_on

    async def apply(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await anyio.sleep(self.delay_s)
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError(f"batch with {self.fail_on} failed")
        return [item * 10 for item in items]


async def test_concurrent_writes_share_batches_and_get_their_own_results() -> None:
    recorder = Recorder(delay_s=0.01)
    group = GroupCommit(recorder.apply, max_batch=8, name="test")
    results: dict[int, int] = {}

    async def write(item: int) -> None:
        results[item] = await group.submit(item)

    async with anyio.create_task_group() as tg:
        for item in range(20):
            tg.start_soon(write, item)
    assert results == {item: item * 10 for item in range(20)}
    assert sorted(i for batch in recorder.batches for i in batch) == list(range(20))
    assert len(recorder.batches) < 20  # shared
    assert max(len(batch) for batch in recorder.batches) <= 8


async def test_writes_woken_together_share_the_first_batch() -> None:
    recorder = Recorder(delay_s=0.01)
    group = GroupCommit(recorder.apply, max_batch=64, name="test")
    ended = anyio.Event()

    async def write_once_ended(item: int) -> None:
        await ended.wait()
        await group.submit(item)

    async with anyio.create_task_group() as tg:
        for item in range(20):
            tg.start_soon(write_once_ended, item)
        await anyio.lowlevel.checkpoint()  # every writer waits
        ended.set()  # as the watcher wakes the runs whose jobs ended together
    assert recorder.batches == [list(range(20))]  # one transaction, not 1 + 19


async def test_an_error_reaches_every_caller_of_that_batch_only() -> None:
    recorder = Recorder(delay_s=0.01, fail_on=3)
    group = GroupCommit(recorder.apply, max_batch=4, name="test")
    outcomes: dict[int, object] = {}

    async def write(item: int) -> None:
        try:
            outcomes[item] = await group.submit(item)
        except RuntimeError as exc:
            outcomes[item] = exc

    async with anyio.create_task_group() as tg:
        for item in range(8):
            tg.start_soon(write, item)
    failed_batch = next(batch for batch in recorder.batches if 3 in batch)
    for item in range(8):
        if item in failed_batch:
            assert isinstance(outcomes[item], RuntimeError)
        else:
            assert outcomes[item] == item * 10


async def test_a_leader_returns_after_its_own_batch_under_sustained_load() -> None:
    recorder = Recorder(delay_s=0.02)
    group = GroupCommit(recorder.apply, max_batch=4, name="test")
    batches_when_first_returned: list[int] = []

    async def first() -> None:
        await group.submit(0)
        batches_when_first_returned.append(len(recorder.batches))

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await anyio.lowlevel.checkpoint()  # `first` leads the first batch
        for item in range(1, 40):
            tg.start_soon(group.submit, item)
    assert len(recorder.batches) == 11  # [0] alone, then ten batches of four
    # It did not go on applying the other nine batches before returning its own result.
    assert batches_when_first_returned[0] <= 2


async def test_a_cancelled_leader_still_finishes_the_batch_others_wait_on() -> None:
    recorder = Recorder(delay_s=0.05)
    group = GroupCommit(recorder.apply, max_batch=1, name="test")
    results: dict[int, int] = {}
    leader_scope = anyio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await group.submit(1)

    async def follower() -> None:
        results[2] = await group.submit(2)

    async with anyio.create_task_group() as tg:
        tg.start_soon(leader)
        await anyio.sleep(0.01)  # the leader's batch [1] is under way
        tg.start_soon(follower)
        await anyio.sleep(0.01)
        leader_scope.cancel()
    assert recorder.batches == [[1], [2]]  # the leader's own write was not abandoned
    assert results[2] == 20
    assert leader_scope.cancelled_caught or leader_scope.cancel_called


async def test_an_outbox_sends_in_order_in_batches_without_making_senders_wait() -> None:
    sent: list[list[int]] = []
    release = anyio.Event()

    async def send(items: Sequence[int]) -> None:
        sent.append(list(items))
        await release.wait()  # the first batch is slow: the rest piles up meanwhile

    outbox = Outbox(send, max_batch=3, name="test")
    async with anyio.create_task_group() as tg:
        await tg.start(outbox.run)
        outbox.put(1)
        await anyio.wait_all_tasks_blocked()
        for item in range(2, 7):
            outbox.put(item)  # returns at once, though nothing is being sent
        assert sent == [[1]]
        release.set()
        await outbox.flush()
        tg.cancel_scope.cancel()
    assert sent == [[1], [2, 3, 4], [5, 6]]


async def test_an_outbox_survives_a_failing_send() -> None:
    sent: list[int] = []

    async def send(items: Sequence[int]) -> None:
        if 1 in items:
            raise RuntimeError("boom")
        sent.extend(items)

    outbox = Outbox(send, max_batch=1, name="test")
    async with anyio.create_task_group() as tg:
        await tg.start(outbox.run)
        outbox.put(1)
        outbox.put(2)
        await outbox.flush()
        tg.cancel_scope.cancel()
    assert sent == [2]


async def test_a_flush_after_the_outbox_task_is_gone_sends_what_is_left() -> None:
    # As when a replica stops after a fault: the task group that ran the outbox is gone.
    sent: list[int] = []

    async def send(items: Sequence[int]) -> None:
        sent.extend(items)

    outbox = Outbox(send, max_batch=2, name="test")
    async with anyio.create_task_group() as tg:
        await tg.start(outbox.run)
        tg.cancel_scope.cancel()
    for item in range(5):
        outbox.put(item)
    with anyio.fail_after(1):
        await outbox.flush()
    assert sent == [0, 1, 2, 3, 4]
