"""`taskbeat algorithms list | show | set | pause | resume` and `taskbeat stats`: what the
service runs, how much, and the policy of each algorithm."""

import argparse
import json
from typing import TYPE_CHECKING, Any

from app.cli.api import add_api_command
from app.cli.exits import EXIT_OK
from app.cli.output import emit_json, print_fields, print_items, print_table
from app.client import TaskbeatClient
from app.domain.models import TaskStatus

if TYPE_CHECKING:
    from app.cli.api import SubCommands

LIST_COLUMNS = ("name", "running", "waiting", "max_active", "priority", "max_attempts", "paused")


def stats(client: TaskbeatClient, args: argparse.Namespace) -> int:
    body = client.stats()
    if args.json:
        emit_json(body)
        return EXIT_OK
    totals: dict[str, int] = body.get("totals", {})
    print_table(
        ("STATUS", "TASKS"), [(status, totals.get(status, 0)) for status in map(str, TaskStatus)]
    )
    print()
    print_table(("ALGORITHM", "ACTIVE"), sorted(body.get("active", {}).items()))
    replica = body.get("replica")
    if replica:
        print(
            f"\nreplica {replica.get('id')}: {replica.get('running')} running, "
            f"{replica.get('waiting')} waiting"
        )
    return EXIT_OK


def _show(body: dict[str, Any], args: argparse.Namespace) -> int:
    if args.json:
        emit_json(body)
    else:
        print_fields(list(body.items()))
    return EXIT_OK


def list_algorithms(client: TaskbeatClient, args: argparse.Namespace) -> int:
    print_items(client.algorithms(), LIST_COLUMNS, as_json=args.json)
    return EXIT_OK


def show(client: TaskbeatClient, args: argparse.Namespace) -> int:
    return _show(client.algorithm(args.name), args)


def parse_assignment(text: str) -> tuple[str, Any]:
    """`field=value`, the value read as JSON when it is JSON (3, true, ["lost"], null)."""
    field, sep, value = text.partition("=")
    if not sep or not field:
        raise argparse.ArgumentTypeError(f"expected field=value, not {text!r}")
    try:
        return field, json.loads(value)
    except json.JSONDecodeError:
        return field, value


def set_fields(client: TaskbeatClient, args: argparse.Namespace) -> int:
    return _show(client.change_algorithm(args.name, **dict(args.fields)), args)


def pause(client: TaskbeatClient, args: argparse.Namespace) -> int:
    return _show(client.pause(args.name, args.for_s), args)


def resume(client: TaskbeatClient, args: argparse.Namespace) -> int:
    return _show(client.resume(args.name), args)


def add_commands(commands: "SubCommands") -> None:
    """Adds `stats` and `algorithms …` to the `taskbeat` parser."""
    add_api_command(commands, "stats", stats, "task totals and active counts")
    group = commands.add_parser("algorithms", help="algorithms and their policies")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_api_command(actions, "list", list_algorithms, "every algorithm with its live figures")
    for name, handler, help in [
        ("show", show, "one algorithm's policy and figures"),
        ("set", set_fields, "change policy fields: set NAME max_active=3 retry_on='[\"lost\"]'"),
        ("pause", pause, "start no new runs of it on any replica"),
        ("resume", resume, "start its runs again"),
    ]:
        parser = add_api_command(actions, name, handler, help)
        parser.add_argument("name", help="the algorithm")
        if name == "set":
            parser.add_argument("fields", nargs="+", type=parse_assignment, help="field=value")
        if name == "pause":
            parser.add_argument("--for", dest="for_s", type=float, help="resume after N seconds")
