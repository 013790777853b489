"""Fixtures for the native binding tests: the real built library, no mocks."""

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

import anyio
import pytest

from app.native import InvalidHandleError, JobWatcher, NativeLibrary, load_library


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def lib() -> NativeLibrary:
    return load_library()


@pytest.fixture
def submit(lib: NativeLibrary) -> Iterator[Callable[[str], int]]:
    """Submits a job; every job submitted this way is freed when the test ends."""
    handles: list[int] = []

    def submit_job(input_json: str) -> int:
        handle = lib.submit(input_json)
        handles.append(handle)
        return handle

    yield submit_job
    for handle in handles:
        with contextlib.suppress(InvalidHandleError):  # the test may have freed it itself
            lib.free(handle)


@pytest.fixture
async def watcher(lib: NativeLibrary) -> AsyncIterator[JobWatcher]:
    job_watcher = JobWatcher(lib)
    async with anyio.create_task_group() as tg:
        await tg.start(job_watcher.run)
        yield job_watcher
        tg.cancel_scope.cancel()
