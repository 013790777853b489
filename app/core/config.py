"""Every setting of the service, read from TASKBEAT_* environment variables, `.env` and
the TOML file named by TASKBEAT_CONFIG_FILE (in that order of precedence)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.core.config_file import ConfigFileSource, config_file_path
from app.domain.keys import SECRET_PATTERN
from app.domain.policy import DEFAULT_RETENTION_S, Policy, PolicyFields
from app.domain.schedule import ScheduleFields


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None in memory, or for another database)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    return None if path in ("", ":memory:") else Path(path)


class RemoteAlgorithmConfig(BaseModel):
    """An external engine, registered by the operator (never from a request)."""

    name: str = Field(min_length=1, max_length=64)
    submit_url: str = Field(description="POST {task_id, input} here; answers {job_id}")
    result_url: str = Field(description="GET the job's state here; contains {job_id}")
    cancel_url: str | None = Field(default=None, description="POST here to cancel; {job_id}")
    auth_header: str | None = Field(default=None, description="Authorization header value")
    request_timeout_s: float = Field(default=10.0, gt=0)
    callback_secret: str | None = Field(
        default=None,
        description="this engine's own HMAC secret for its callbacks (instead of the service's)",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if "{job_id}" not in self.result_url:
            raise ValueError(f"result_url of {self.name!r} must contain {{job_id}}")
        return self


class Settings(BaseSettings):
    """One place for every knob; `.env.example` lists each with its default."""

    model_config = SettingsConfigDict(
        env_prefix="TASKBEAT_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_parse_none_str="",  # `KEY=` means "unset", as .env.example writes it
        extra="ignore",
    )

    database_url: str = Field(
        default="sqlite:///./var/taskbeat.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql://user@host/db",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://host:port/db, rediss:// (TLS) or "
        "redis+sentinel://host:26379,host2:26379/service/db; unset starts an embedded "
        "redis-server child process",
    )
    embedded_redis_socket: Path | None = Field(
        default=None,
        description="unix socket of the embedded redis-server; default redis.sock beside the "
        "SQLite file (var/redis.sock)",
    )
    redis_prefix: str = Field(default="taskbeat:", description="prefix of every Redis key")
    host: str = Field(default="127.0.0.1", description="address `taskbeat serve` binds")
    port: int = Field(default=8000, ge=1, le=65535, description="port `taskbeat serve` binds")

    poll_interval_s: float = Field(default=3.0, gt=0, description="seconds between two polls")
    poll_max_retries: int = Field(
        default=5, ge=0, description="failed polls in a row survived; one more fails the task"
    )
    heartbeat_interval_s: float = Field(
        default=2.0, gt=0, description="seconds between two heartbeats of a replica"
    )
    stale_after_intervals: int = Field(
        default=3,
        ge=2,
        description="silent heartbeat intervals that end a replica's lease (unless "
        "TASKBEAT_LEASE_S is set) and make `taskbeat heartbeats` flag its tasks stale",
    )
    lease_s: float | None = Field(
        default=None,
        gt=0,
        description="seconds a replica owns its tasks without beating; "
        "default TASKBEAT_STALE_AFTER_INTERVALS heartbeats",
    )
    task_timeout_s: int = Field(default=3600, ge=1, description="default timeout of a task")
    max_timeout_s: int = Field(default=86400, ge=1, description="largest timeout_s a task may ask")
    max_active: int = Field(
        default=10000,
        ge=1,
        description="run slots of one replica; each algorithm's max_active limits the cluster",
    )
    max_pending: int = Field(
        default=100000,
        ge=1,
        description="default max_waiting: tasks of one algorithm waiting before creates get 429",
    )
    max_attempts: int = Field(
        default=3, ge=1, description="default max_attempts: the most runs a task gets"
    )
    retry_base_s: float = Field(
        default=1.0, gt=0, description="default retry_base_s: backoff before the 2nd attempt"
    )
    retry_max_s: float = Field(
        default=300.0, gt=0, description="default retry_max_s: the longest backoff"
    )
    retention_s: float = Field(
        default=DEFAULT_RETENTION_S,
        gt=0,
        description="finished tasks older than this are deleted (an algorithm's retention_s"
        " overrides it)",
    )
    retention_interval_s: float = Field(
        default=60.0, gt=0, description="seconds between two passes that delete old tasks"
    )
    config_file: Path | None = Field(
        default=None,
        description="TOML file of settings (by name), [algorithms.<name>] policies and "
        "[[remote_algorithms]] engines; the environment and .env win over it",
    )
    algorithms: dict[str, PolicyFields] = Field(
        default={},
        description='policies by algorithm, as JSON {"hello": {"max_active": 3}} or in the '
        "config file; changes made through the API win over them",
    )
    schedules: dict[str, ScheduleFields] = Field(
        default={},
        description='schedules by name, as JSON {"nightly": {"algorithm": "hello", "cron": '
        '"0 3 * * *"}} or [schedules.<name>] in the config file; see the README for how API '
        "changes and the file meet",
    )
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="largest request body")
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="seconds a client has to send its request headers"
    )
    keepalive_timeout_s: int = Field(
        default=5, ge=1, description="seconds an idle kept-alive connection stays open"
    )
    progress_persist_interval_s: float = Field(
        default=5.0, gt=0, description="seconds between two saves of running progress"
    )
    shutdown_grace_s: float = Field(
        default=10.0, ge=0, description="seconds running tasks may finish after SIGTERM"
    )
    callback_secret: str | None = Field(
        default=None, description="HMAC secret that signs engine callbacks"
    )
    callback_secret_previous: str | None = Field(
        default=None, description="second accepted callback secret, while rotating"
    )
    remote_algorithms: list[RemoteAlgorithmConfig] = Field(
        default=[],
        description='external engines as JSON: [{"name", "submit_url", "result_url", ...}]',
    )
    sse_keepalive_s: float = Field(
        default=15.0, gt=0, description="seconds between keep-alive comments of event streams"
    )
    log_level: str = Field(default="info", description="debug, info, warning or error")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text, or json: one object a line, with task_id, attempt, algorithm and "
        "replica on every line about a run",
    )
    debug_endpoints: bool = Field(
        default=False, description="serve /debug (profiler, asyncio tasks, loop lag); else 404"
    )
    auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="API keys: auto (on once any key exists; with none, off on a loopback "
        "address and a refused start on any other), on, or off",
    )
    bootstrap_admin_key: SecretStr | None = Field(
        default=None,
        description="an admin key (tb_ + 43 or more URL-safe characters) stored, hashed, at start",
    )
    metrics_public: bool = Field(default=False, description="serve /metrics without a key")
    key_rate_per_s: int = Field(
        default=100, ge=1, description="requests per second per key, over all replicas"
    )
    key_max_unfinished: int = Field(
        default=10000, ge=1, description="unfinished tasks per key at once, over all replicas"
    )
    idempotency_ttl_s: int = Field(
        default=86400,
        ge=1,
        description="how long an Idempotency-Key of a create answers its first task",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs = getattr(init_settings, "init_kwargs", {})
        config_file = ConfigFileSource(settings_cls, config_file_path(init_kwargs))
        return init_settings, env_settings, dotenv_settings, config_file, file_secret_settings

    def policy_of(self, name: str) -> Policy:
        """The configured policy of an algorithm: the defaults above, then `algorithms`."""
        defaults = Policy(
            name=name,
            max_waiting=self.max_pending,
            timeout_s=self.task_timeout_s,
            max_timeout_s=self.max_timeout_s,
            max_attempts=self.max_attempts,
            retry_base_s=min(self.retry_base_s, self.retry_max_s),
            retry_max_s=self.retry_max_s,
            poll_interval_s=self.poll_interval_s,
            retention_s=self.retention_s,
        )
        declared = self.algorithms.get(name)
        return defaults if declared is None else defaults.with_fields(declared.given())

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.task_timeout_s > self.max_timeout_s:
            raise ValueError("task_timeout_s must not exceed max_timeout_s")
        if self.lease_s is not None and self.lease_s <= self.heartbeat_interval_s:
            raise ValueError("lease_s must be longer than heartbeat_interval_s")
        if not self.database_url.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("database_url must be a sqlite:// or postgresql:// URL")
        for name in self.algorithms:
            self.policy_of(name)  # a declared policy must be whole (timeout_s <= max_timeout_s)
        bootstrap = self.bootstrap_admin_key
        if bootstrap is not None and SECRET_PATTERN.fullmatch(bootstrap.get_secret_value()) is None:
            raise ValueError("bootstrap_admin_key must be tb_ and 43 or more URL-safe characters")
        return self

    @property
    def lease_duration_s(self) -> float:
        """How long a replica's ownership of its tasks lasts without a heartbeat: the service
        then moves its tasks on, and `taskbeat heartbeats` flags them stale."""
        if self.lease_s is not None:
            return self.lease_s
        return self.stale_after_intervals * self.heartbeat_interval_s

    @property
    def sqlite_path(self) -> Path | None:
        """The database file when the store is SQLite (None in memory or on PostgreSQL)."""
        return sqlite_file(self.database_url)

    @property
    def embedded_redis_socket_path(self) -> Path:
        """Where the embedded redis-server listens, so that monitors on the machine find it."""
        if self.embedded_redis_socket is not None:
            return self.embedded_redis_socket.absolute()
        beside = self.sqlite_path.parent if self.sqlite_path is not None else Path("var")
        return (beside / "redis.sock").absolute()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
