"""What every command that calls the API shares: its options, one client per run, and the
client's errors turned into exit statuses."""

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from app.cli.exits import EXIT_API_ERROR, EXIT_OK, EXIT_UNREACHABLE
from app.client import DEFAULT_URL, TaskbeatAPIError, TaskbeatClient, TaskbeatConnectionError

Handler = Callable[[TaskbeatClient, argparse.Namespace], int]
if TYPE_CHECKING:  # argparse's subparsers type is generic only to type checkers
    SubCommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def run(handler: Handler, args: argparse.Namespace) -> int:
    """Runs one command against the API; turns client errors into exit statuses."""
    try:
        with TaskbeatClient(args.url, api_key=args.api_key) as client:
            return handler(client, args)
    except TaskbeatAPIError as exc:
        print(f"taskbeat: {exc.status_code} {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_API_ERROR
    except TaskbeatConnectionError as exc:
        print(f"taskbeat: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, without a second error at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _api_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--url",
        default=os.environ.get("TASKBEAT_URL", DEFAULT_URL),
        help="the service (default TASKBEAT_URL or %(default)s)",
    )
    options.add_argument(
        "--api-key",
        default=os.environ.get("TASKBEAT_API_KEY"),
        help="the API key sent as a bearer token (default TASKBEAT_API_KEY)",
    )
    options.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return options


def add_api_command(
    parent: "SubCommands",
    name: str,
    handler: Handler,
    help: str,
) -> argparse.ArgumentParser:
    """A subcommand `name` that runs `handler` with a client of the service at --url."""
    parser = parent.add_parser(name, parents=[_api_options()], help=help, description=help)
    parser.set_defaults(handler=lambda args: run(handler, args))
    return parser
