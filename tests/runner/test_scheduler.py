"""The scheduler in one replica: a six-field cron fires on its second, schedules declared
in the configuration file are in force, and how the file and API changes meet."""

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from conftest import AppClient

pytestmark = pytest.mark.anyio


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def fired(client: httpx.AsyncClient, schedule: str, count: int) -> list[dict[str, Any]]:
    with anyio.fail_after(15):
        while True:
            page = await client.get("/v1/tasks", params={"schedule": schedule})
            tasks = list(page.json()["items"])
            if len(tasks) >= count:
                return tasks
            await anyio.sleep(0.1)


async def test_a_six_field_cron_fires_on_its_second(client: httpx.AsyncClient) -> None:
    body = {
        "name": "even",
        "algorithm": "hello",
        "input": {"duration_ms": 10},
        "cron": "*/2 * * * * *",
        "overlap": "allow",
    }
    assert (await client.post("/v1/schedules", json=body)).status_code == 201
    tasks = await fired(client, "even", 3)
    ticks = sorted(at(task["scheduled_for"]) for task in tasks)
    assert all(tick.second % 2 == 0 and tick.microsecond == 0 for tick in ticks)
    for task in tasks:  # made on its second (a loaded machine may take a moment more)
        assert (
            timedelta(0)
            <= at(task["created_at"]) - at(task["scheduled_for"])
            < timedelta(seconds=2)
        )


async def test_a_paused_schedule_fires_nothing_until_resumed(client: httpx.AsyncClient) -> None:
    body = {"name": "held", "algorithm": "hello", "cron": "@every 1s", "paused": True}
    assert (await client.post("/v1/schedules", json=body)).status_code == 201
    await anyio.sleep(2.5)
    assert (await client.get("/v1/tasks", params={"schedule": "held"})).json()["items"] == []
    resumed_at = datetime.now().astimezone()
    assert (await client.post("/v1/schedules/held/resume")).status_code == 200
    (task, *_) = await fired(client, "held", 1)
    assert at(task["scheduled_for"]) > resumed_at  # the paused ticks are not caught up


def declare(path: Path, cron: str) -> Path:
    path.write_text(
        "[schedules.filed]\n"
        'algorithm = "hello"\n'
        "input = { duration_ms = 10 }\n"
        f'cron = "{cron}"\n'
        'timezone = "Europe/Berlin"\n'
        "priority = 2\n"
    )
    return path


async def test_the_config_file_declares_schedules_and_api_changes_last_until_it_changes(
    app_client: AppClient, tmp_path: Path
) -> None:
    config = declare(tmp_path / "taskbeat.toml", "@every 1s")
    async with app_client(config_file=config) as client:
        shown = (await client.get("/v1/schedules/filed")).json()
        assert (shown["cron"], shown["timezone"], shown["priority"]) == (
            "@every 1s",
            "Europe/Berlin",
            2,
        )
        (task, *_) = await fired(client, "filed", 1)
        assert task["priority"] == 2
        changed = await client.patch("/v1/schedules/filed", json={"priority": 5})
        assert changed.status_code == 200
    async with app_client(config_file=config) as client:  # the same file: the API's change stays
        assert (await client.get("/v1/schedules/filed")).json()["priority"] == 5
    declare(config, "@every 2s")
    async with app_client(config_file=config) as client:  # an edited file wins at the start
        shown = (await client.get("/v1/schedules/filed")).json()
        assert (shown["cron"], shown["priority"]) == ("@every 2s", 2)
