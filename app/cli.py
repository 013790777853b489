"""The `taskbeat` console script."""

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from app import cli_heartbeats, cli_tasks
from app.core.config import Settings

EXIT_REPLICA_FAILED = 1


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"TASKBEAT_{'_'.join(str(p) for p in error['loc']).upper() or 'SETTINGS'}: "
            f"{error['msg']}"
            for error in exc.errors()
        )
        sys.exit(f"taskbeat: bad configuration: {problems}")


def serve(args: argparse.Namespace) -> None:
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from app.api.http_protocol import protocol_with_header_timeout
    from app.core.gc_policy import tune_for_service
    from app.main import create_app

    settings = _settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def stop_serving() -> None:
        server.should_exit = True

    app = create_app(settings, on_replica_failure=stop_serving)
    config = uvicorn.Config(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
        http=protocol_with_header_timeout(settings.header_timeout_s),
        timeout_keep_alive=settings.keepalive_timeout_s,
        server_header=False,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskbeat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the service (migrates first)")
    serve_parser.add_argument("--host", help="address to bind (default TASKBEAT_HOST)")
    serve_parser.add_argument("--port", type=int, help="port to bind (default TASKBEAT_PORT)")
    serve_parser.set_defaults(handler=serve)
    migrate_parser = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate_parser.set_defaults(handler=migrate)
    cli_tasks.add_commands(commands)
    cli_heartbeats.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    exit_status = args.handler(args)
    if exit_status:
        sys.exit(exit_status)


if __name__ == "__main__":
    main()
