"""`taskbeat bulk cancel | retry`: act on every task a filter matches.

Exit status: 0 ok, 1 API error, 3 server unreachable.
"""

import argparse
from typing import TYPE_CHECKING

from app.cli.api import add_api_command
from app.cli.exits import EXIT_OK
from app.cli.output import emit_json, print_fields
from app.client import TaskbeatClient
from app.domain.models import TaskStatus

if TYPE_CHECKING:
    from app.cli.api import SubCommands


def _show(answer: dict[str, int], args: argparse.Namespace) -> int:
    if args.json:
        emit_json(answer)
    else:
        print_fields([("matched", answer["matched"]), ("changed", answer["changed"])])
    return EXIT_OK


def cancel(client: TaskbeatClient, args: argparse.Namespace) -> int:
    where = {"algorithm": args.algorithm, "status": args.status, "schedule": args.schedule}
    return _show(client.bulk_cancel(**where, created_before=args.created_before), args)


def retry(client: TaskbeatClient, args: argparse.Namespace) -> int:
    where = {"algorithm": args.algorithm, "status": args.status, "schedule": args.schedule}
    return _show(client.bulk_retry(**where, created_before=args.created_before), args)


def add_commands(commands: "SubCommands") -> None:
    """Adds `bulk cancel` and `bulk retry` to the `taskbeat` parser."""
    group = commands.add_parser("bulk", help="cancel or re-run every task a filter matches")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, handler, help in [
        ("cancel", cancel, "cancel the unfinished tasks matching (a client key: its own)"),
        ("retry", retry, "run the failed, cancelled and timed-out tasks matching again"),
    ]:
        parser = add_api_command(actions, name, handler, help)
        parser.add_argument("--algorithm", help="only this algorithm's tasks")
        parser.add_argument("--status", choices=[str(s) for s in TaskStatus])
        parser.add_argument("--created-before", help="only tasks created before (ISO-8601)")
        parser.add_argument("--schedule", help="only the tasks this schedule made")
