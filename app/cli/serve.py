"""`taskbeat serve`, `migrate` and `health`: the service itself, its schema, its liveness."""

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING

from pydantic import ValidationError

from app.cli.exits import EXIT_OK, EXIT_UNREACHABLE
from app.client import DEFAULT_URL
from app.core.config import Settings
from app.core.config_file import ConfigFileError, config_file_path, line_of

if TYPE_CHECKING:
    from app.cli.api import SubCommands

EXIT_REPLICA_FAILED = 1


def _problem(loc: tuple[str | int, ...], message: str) -> str:
    """One bad value, named by its variable and, when the config file sets it, its line."""
    variable = f"TASKBEAT_{str(loc[0]).upper()}" if loc else "settings"
    path = config_file_path({})
    line = line_of(path, loc) if path is not None and loc else None
    where = f" ({path} line {line}: {'.'.join(map(str, loc))})" if line else ""
    return f"{variable}{where}: {message}"


def _settings() -> Settings:
    try:
        return Settings()
    except ConfigFileError as exc:
        sys.exit(f"taskbeat: bad configuration file: {exc}")
    except ValidationError as exc:
        problems = "; ".join(_problem(error["loc"], error["msg"]) for error in exc.errors())
        sys.exit(f"taskbeat: bad configuration: {problems}")


def serve(args: argparse.Namespace) -> None:
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from app.api.http_protocol import protocol_with_header_timeout
    from app.core.gc_policy import tune_for_service
    from app.main import create_app
    from app.observe.logs import configure_logging

    settings = _settings()
    if args.host:  # the address bound decides whether auth may be off (TASKBEAT_AUTH=auto)
        settings = settings.model_copy(update={"host": args.host})
    configure_logging(level=settings.log_level, log_format=settings.log_format)

    def stop_serving() -> None:
        server.should_exit = True

    app = create_app(settings, on_replica_failure=stop_serving)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's lines go through the root handler: text or JSON alike
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
        http=protocol_with_header_timeout(settings.header_timeout_s),
        timeout_keep_alive=settings.keepalive_timeout_s,
        server_header=False,
        ws="none",  # no WebSocket routes: the websockets library is never loaded
    )
    server = uvicorn.Server(config)
    tune_for_service()
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
    if app.state.replica_failed:
        sys.exit(EXIT_REPLICA_FAILED)  # for the supervisor: restart this process


def migrate(_: argparse.Namespace) -> None:
    from app.core.migrations import upgrade_to_head

    upgrade_to_head(_settings().database_url)


def health(args: argparse.Namespace) -> int:
    """Exit 0 when the service answers /healthz (a container's HEALTHCHECK), else 3."""
    import httpx

    try:
        answer = httpx.get(f"{args.url.rstrip('/')}/healthz", timeout=3)
    except httpx.HTTPError as exc:
        print(f"taskbeat: cannot reach {args.url}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(answer.text)
    return EXIT_OK if answer.status_code == 200 else EXIT_UNREACHABLE


def add_commands(commands: "SubCommands") -> None:
    """Adds `serve` and `migrate` to the `taskbeat` parser."""
    serve_parser = commands.add_parser("serve", help="run the service (migrates first)")
    serve_parser.add_argument("--host", help="address to bind (default TASKBEAT_HOST)")
    serve_parser.add_argument("--port", type=int, help="port to bind (default TASKBEAT_PORT)")
    serve_parser.set_defaults(handler=serve)
    migrate_parser = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate_parser.set_defaults(handler=migrate)
    health_parser = commands.add_parser("health", help="exit 0 if the service answers /healthz")
    health_parser.add_argument(
        "--url",
        default=os.environ.get("TASKBEAT_URL", DEFAULT_URL),
        help="the service (default TASKBEAT_URL or %(default)s)",
    )
    health_parser.set_defaults(handler=health)
