"""Whether requests need a key (TASKBEAT_AUTH=auto): many requests at once ask the
database once, not once each, and a key made meanwhile turns auth on."""

import anyio
import pytest

pytestmark = pytest.mark.anyio


async def test_requests_at_once_ask_the_database_once(client) -> None:
    keys = client.app.state.context.keys
    looks = 0
    any_key = keys.store.any

    async def counted() -> bool:
        nonlocal looks
        looks += 1
        await anyio.sleep(0.05)  # a slow database: every request comes while it answers
        return await any_key()

    keys.store.any = counted
    keys._no_key_checked_at = float("-inf")  # the cached answer is stale
    answers: list[bool] = []

    async def ask() -> None:
        answers.append(await keys.required())

    async with anyio.create_task_group() as tg:
        for _ in range(64):
            tg.start_soon(ask)
    assert answers == [False] * 64
    assert looks == 1


async def test_a_failed_look_is_tried_again_by_the_next_request(client) -> None:
    keys = client.app.state.context.keys
    any_key = keys.store.any

    async def broken() -> bool:
        raise OSError("database gone")

    keys.store.any = broken
    keys._no_key_checked_at = float("-inf")
    with pytest.raises(OSError, match="database gone"):
        await keys.required()
    keys.store.any = any_key
    assert await keys.required() is False  # looked again, not answered from the failure
    response = await client.post("/v1/keys", json={"name": "first", "role": "admin"})
    assert response.status_code == 201, response.text
    assert await keys.required() is True
