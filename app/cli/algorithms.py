"""`taskbeat algorithms` and `taskbeat stats`: what the service runs, and how much."""

import argparse
from typing import TYPE_CHECKING

from app.cli.api import add_api_command
from app.cli.exits import EXIT_OK
from app.cli.output import emit_json, print_table
from app.client import TaskbeatClient
from app.domain.models import TaskStatus

if TYPE_CHECKING:
    from app.cli.api import SubCommands


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


def algorithms(client: TaskbeatClient, args: argparse.Namespace) -> int:
    items = client.algorithms()
    if args.json:
        emit_json({"items": items})
    else:
        print_table(
            ("ALGORITHM", "ACTIVE", "MAX_ACTIVE"),
            [(a.get("name"), a.get("active"), a.get("max_active")) for a in items],
        )
    return EXIT_OK


def add_commands(commands: "SubCommands") -> None:
    """Adds `stats` and `algorithms` to the `taskbeat` parser."""
    add_api_command(commands, "stats", stats, "task totals and active counts")
    add_api_command(commands, "algorithms", algorithms, "registered algorithms")
