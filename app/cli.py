"""The `taskbeat` console script."""

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from pydantic import ValidationError

from app import cli_heartbeats, cli_tasks
from app.client import DEFAULT_URL
from app.core.config import Settings


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


def health(args: argparse.Namespace) -> int:
    """Exit 0 when the service answers /healthz (a container's HEALTHCHECK), else 3."""
    import httpx

    try:
        answer = httpx.get(f"{args.url.rstrip('/')}/healthz", timeout=3)
    except httpx.HTTPError as exc:
        print(f"taskbeat: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 3
    print(answer.text)
    return 0 if answer.status_code == 200 else 3


def version_text() -> str:
    """The package's version and the API version of the C library it loads."""
    from app.native import NativeError, load_library

    try:
        library = f"C library API {load_library().version}"
    except NativeError as exc:
        library = f"C library unavailable: {exc}"
    return f"taskbeat {metadata.version('taskbeat')} ({library})"


class _PrintVersion(argparse.Action):
    """`--version`, computed only when asked: it loads the C library."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the versions and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskbeat", description=__doc__)
    parser.add_argument("--version", action=_PrintVersion)
    commands = parser.add_subparsers(dest="command", required=True)
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
