"""Writes the sync client, app/client/_sync/client.py, from the async one with unasync
(`make sync-client`); with `--check` it only tells whether that file is current
(`make lint`), and exits 1 when it is not."""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync

CLIENT_DIR = Path(__file__).resolve().parent
ASYNC_SOURCE = CLIENT_DIR / "_async" / "client.py"
SYNC_TARGET = CLIENT_DIR / "_sync" / "client.py"
HEADER = (
    "# Generated from app/client/_async/client.py by `make sync-client` (unasync): edit that.\n"
)
# Sync names unasync cannot guess (its default turns `AsyncX` into `SyncX`).
SYNC_NAMES = {
    "AsyncTaskbeatClient": "TaskbeatClient",
    "AsyncClient": "Client",
    "aclose": "close",
    "aread": "read",
    "aconnect_sse": "connect_sse",
    "aiter_sse": "iter_sse",
}


def _ruff(*args: str, source: str) -> str:
    """`source` passed through ruff with the project's settings, as if it were SYNC_TARGET."""
    command = [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(SYNC_TARGET), "-"]
    return subprocess.run(command, input=source, capture_output=True, text=True, check=True).stdout


def sync_source() -> str:
    """The sync client as `make sync-client` writes it: unasync, then ruff's fixes of import
    order and of loops that became `yield from`, and its format (for the joinable lines that
    dropped `await`s leave)."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch, "_async", "client.py")
        copy.parent.mkdir()
        shutil.copyfile(ASYNC_SOURCE, copy)
        rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=SYNC_NAMES)
        unasync.unasync_files([str(copy)], rules=[rule])
        generated = HEADER + Path(scratch, "_sync", "client.py").read_text()
    fixes = ("check", "--quiet", "--fix-only", "--unsafe-fixes", "--select", "I,UP028")
    return _ruff("format", "--quiet", source=_ruff(*fixes, source=generated))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; write nothing")
    args = parser.parse_args()
    expected = sync_source()
    current = SYNC_TARGET.read_text() if SYNC_TARGET.exists() else ""
    if args.check:
        if current != expected:
            sys.exit(f"{SYNC_TARGET} is not current: run `make sync-client`")
        return
    if current != expected:
        SYNC_TARGET.write_text(expected)


if __name__ == "__main__":
    main()
