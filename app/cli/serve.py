"""`taskbeat serve` and `taskbeat migrate`: the service itself, and its database schema."""

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from pydantic import ValidationError

from app.core.config import Settings

if TYPE_CHECKING:
    from app.cli.api import SubCommands


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

    from app.core.gc_policy import tune_for_service
    from app.main import create_app

    settings = _settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = create_app(settings)
    tune_for_service()
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
    )


def migrate(_: argparse.Namespace) -> None:
    from app.core.migrations import upgrade_to_head

    upgrade_to_head(_settings().database_url)


def add_commands(commands: "SubCommands") -> None:
    """Adds `serve` and `migrate` to the `taskbeat` parser."""
    serve_parser = commands.add_parser("serve", help="run the service (migrates first)")
    serve_parser.add_argument("--host", help="address to bind (default TASKBEAT_HOST)")
    serve_parser.add_argument("--port", type=int, help="port to bind (default TASKBEAT_PORT)")
    serve_parser.set_defaults(handler=serve)
    migrate_parser = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate_parser.set_defaults(handler=migrate)
