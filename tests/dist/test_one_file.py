"""The one-file build (`make dist`) on a machine with no Python: a bubblewrap sandbox whose
root holds only the C library directories (/usr/lib/x86_64-linux-gnu, which also holds a
system libpython, and /lib64 for the loader) and a scratch folder. `make dist-test` builds
the file and runs these; without dist/taskbeat or bwrap they skip (or fail under
TASKBEAT_DIST_REQUIRED=1, as in CI)."""

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_process import free_port

from app.core.migrations import SOURCE_TREE_MIGRATIONS, head_revisions
from app.native import EXPECTED_API_VERSION

pytestmark = pytest.mark.dist

BUILT = Path(__file__).resolve().parents[2] / "dist" / "taskbeat"
LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/lib64")
# The dev tools live in the same .venv as the build: none of them may ride along.
NEVER_BUNDLED = ("_pytest", "hypothesis", "mypy", "playwright", "pytest", "schemathesis", "unasync")
REFUSED_TMPDIR = "set TMPDIR to a writable directory that allows running programs"


def _require() -> None:
    missing = [what for what, ok in (("dist/taskbeat", BUILT.is_file()),
                                     ("bwrap", shutil.which("bwrap"))) if not ok]  # fmt: skip
    if missing:
        reason = f"{' and '.join(missing)} missing: run `make dist-test`"
        if os.environ.get("TASKBEAT_DIST_REQUIRED"):
            pytest.fail(reason)
        pytest.skip(reason)


class Sandbox:
    """A root with the C library directories read-only and `scratch` as /work (the cwd)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        shutil.copy2(BUILT, scratch / "taskbeat")
        (scratch / "tmp").mkdir()

    def command(
        self, *args: str, tmpdir: str = "/work/tmp", binds: tuple[str, ...] = ()
    ) -> list[str]:
        libraries = [arg for d in LIBRARY_DIRS if Path(d).is_dir() for arg in ("--ro-bind", d, d)]
        return [
            "bwrap", *libraries, "--symlink", "usr/lib", "/lib",
            "--bind", str(self.scratch), "/work", *binds, "--chdir", "/work",
            "--dev", "/dev", "--proc", "/proc", "--clearenv",
            "--setenv", "HOME", "/work", "--setenv", "TMPDIR", tmpdir,
            "/work/taskbeat", *args,
        ]  # fmt: skip

    def run(self, *args: str, **options: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args, **options), capture_output=True, text=True, timeout=60, check=False
        )


def _children(pid: int) -> list[int]:
    try:
        listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in listed]


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    _require()
    return Sandbox(tmp_path)


def test_version_names_the_c_library(sandbox: Sandbox) -> None:
    result = sandbox.run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("taskbeat ")
    assert f"(C library API {EXPECTED_API_VERSION})" in result.stdout


def test_serves_hello_answers_heartbeats_and_leaves_nothing_behind(sandbox: Sandbox) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = sandbox.scratch / "serve.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        wrapper = subprocess.Popen(
            sandbox.command("serve", "--port", str(port)), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = started + 30
        while True:
            assert wrapper.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        print(f"ready in {time.monotonic() - started:.2f} s")
        bootloader = _children(wrapper.pid)[0]
        processes = _descendants(wrapper.pid)
        service = _children(bootloader)[0]

        maps = Path(f"/proc/{service}/maps").read_text()
        libpython = {line.split()[-1] for line in maps.splitlines() if "libpython" in line}
        assert libpython, "the service maps no libpython at all?"
        # Paths as the sandbox sees them: the bundle unpacks into TMPDIR, /work/tmp.
        assert all(path.startswith("/work/tmp/_MEI") for path in libpython), libpython

        # The dashboard's templates and vendored files travel in the bundle.
        page = httpx.get(f"{url}/ui", follow_redirects=True)
        assert page.status_code == 200, page.text[:500]
        assert "/ui/static/vendor/htmx.min.js" in page.text
        script = httpx.get(f"{url}/ui/static/vendor/htmx.min.js")
        assert script.status_code == 200
        assert len(script.content) > 10_000

        created = httpx.post(f"{url}/v1/tasks", json={"algorithm": "hello", "input": {}}).json()
        running = httpx.post(
            f"{url}/v1/tasks", json={"algorithm": "hello", "input": {"duration_ms": 60000}}
        ).json()
        done = httpx.get(f"{url}/v1/tasks/{created['task_id']}/wait?timeout_s=20", timeout=30)
        assert done.json()["status"] == "succeeded", done.text
        assert done.json()["result"] == {"output": "hello world"}

        beats = sandbox.run("heartbeats")
        assert beats.returncode == 0, (beats.stdout, beats.stderr)
        assert running["task_id"] in beats.stdout

        os.kill(bootloader, signal.SIGTERM)
        assert wrapper.wait(timeout=30) in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in processes if _alive(pid)], "processes outlived SIGTERM"
    assert list((sandbox.scratch / "tmp").iterdir()) == [], "the unpacked bundle was left"
    assert not (sandbox.scratch / "var" / "redis.sock").exists()
    assert "Traceback" not in log_path.read_text()


def test_migrate_brings_a_new_database_to_the_head_of_the_scripts(sandbox: Sandbox) -> None:
    result = sandbox.run("migrate")
    assert result.returncode == 0, result.stderr
    database = sandbox.scratch / "var" / "taskbeat.db"
    with sqlite3.connect(database) as conn:
        versions = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
    assert versions == head_revisions(SOURCE_TREE_MIGRATIONS)
    again = sandbox.run("migrate")  # at the head: nothing to do, and no Alembic loaded
    assert again.returncode == 0, again.stderr


def test_the_dev_tools_are_not_bundled() -> None:
    _require()
    readers = pytest.importorskip("PyInstaller.archive.readers")
    bundle = readers.CArchiveReader(str(BUILT))
    modules = bundle.open_embedded_archive("PYZ.pyz").toc
    bundled = {name.split(".")[0] for name in modules} | {n.split("/")[0] for n in bundle.toc}
    assert not bundled & set(NEVER_BUNDLED)
    assert "app.client.generate_sync" not in modules


def _refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "PYI-" not in result.stderr, result.stderr  # none of the bootloader's own lines
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert REFUSED_TMPDIR in lines[0]
    return lines[0]


def test_unwritable_tmpdir_is_refused_in_one_line(sandbox: Sandbox) -> None:
    readonly = sandbox.scratch / "readonly"
    readonly.mkdir(mode=0o555)
    result = sandbox.run("--version", tmpdir="/ro", binds=("--ro-bind", str(readonly), "/ro"))
    assert _refusal(result).startswith("taskbeat: cannot unpack into TMPDIR=/ro (")
    missing = sandbox.run("--version", tmpdir="/work/no-such-dir")
    assert "TMPDIR=/work/no-such-dir (No such file or directory)" in _refusal(missing)


@pytest.fixture
def noexec_dir(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs mounted noexec (needs root, as CI runs); bwrap keeps the flag on its bind."""
    mount_point = tmp_path / "noexec"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "noexec,size=256m", "tmpfs", str(mount_point)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a noexec tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], timeout=30, check=False)


def test_noexec_tmpdir_is_refused_in_one_line(sandbox: Sandbox, noexec_dir: Path) -> None:
    result = sandbox.run(
        "--version", tmpdir="/work/noexec", binds=("--bind", str(noexec_dir), "/work/noexec")
    )
    assert "TMPDIR=/work/noexec: it is mounted noexec" in _refusal(result)
    assert list(noexec_dir.iterdir()) == [], "the refused start left its folder behind"
