"""The sync client is generated from the async one: same calls, and `--check` (run by
`make lint`) refuses a generated file that fell behind its source."""

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from app.client import AsyncTaskbeatClient, TaskbeatClient
from app.client import generate_sync as generator

# The sync twin of the async client's names where they differ.
RENAMED = {"aclose": "close", "__aenter__": "__enter__", "__aexit__": "__exit__"}


def public_calls(cls: type) -> dict[str, inspect.Signature]:
    return {
        RENAMED.get(name, name): inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and (not name.startswith("_") or name.endswith("__"))
    }


def test_the_sync_client_has_every_call_of_the_async_one_with_its_parameters() -> None:
    async_calls, sync_calls = public_calls(AsyncTaskbeatClient), public_calls(TaskbeatClient)
    assert set(sync_calls) == set(async_calls)
    for name, signature in async_calls.items():
        assert list(sync_calls[name].parameters) == list(signature.parameters), name
    assert not any(inspect.iscoroutinefunction(f) for f in vars(TaskbeatClient).values())


def test_the_committed_sync_client_is_current() -> None:
    assert generator.SYNC_TARGET.read_text() == generator.sync_source()


def test_check_refuses_a_stale_sync_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "client.py"
    stale.write_text(generator.SYNC_TARGET.read_text() + "# edited by hand\n")
    monkeypatch.setattr(generator, "SYNC_TARGET", stale)
    monkeypatch.setattr(sys, "argv", ["generate_sync.py", "--check"])
    with pytest.raises(SystemExit, match="is not current"):
        generator.main()
    monkeypatch.setattr(sys, "argv", ["generate_sync.py"])
    generator.main()
    assert stale.read_text() == generator.sync_source()
    monkeypatch.setattr(sys, "argv", ["generate_sync.py", "--check"])
    generator.main()


def test_the_make_target_runs_from_a_checkout() -> None:
    check = [sys.executable, str(generator.CLIENT_DIR / "generate_sync.py"), "--check"]
    result = subprocess.run(check, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
