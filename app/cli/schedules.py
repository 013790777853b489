"""`taskbeat schedules list | show | create | set | delete | pause | resume`: tasks fired
by cron or an interval, one per tick over every replica."""

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from app.cli.algorithms import parse_assignment
from app.cli.api import add_api_command
from app.cli.exits import EXIT_API_ERROR, EXIT_OK
from app.cli.output import emit_json, print_fields, print_items, print_table
from app.client import TaskbeatClient

if TYPE_CHECKING:
    from app.cli.api import SubCommands

LIST_COLUMNS = ("name", "algorithm", "cron", "timezone", "overlap", "paused", "next_fire_at")
CREATE_OPTIONS = ("timezone", "overlap", "catchup_s", "priority")


def _show(body: dict[str, Any], args: argparse.Namespace) -> int:
    if args.json:
        emit_json(body)
    else:
        print_fields([(key, value) for key, value in body.items() if key != "recent_tasks"])
        recent = body.get("recent_tasks") or []
        if recent:
            print()
            columns = ("task_id", "status", "scheduled_for")
            print_table(
                tuple(c.upper() for c in columns), [tuple(t[c] for c in columns) for t in recent]
            )
    return EXIT_OK


def list_schedules(client: TaskbeatClient, args: argparse.Namespace) -> int:
    print_items(client.schedules(), LIST_COLUMNS, as_json=args.json)
    return EXIT_OK


def show(client: TaskbeatClient, args: argparse.Namespace) -> int:
    return _show(client.schedule(args.name), args)


def create(client: TaskbeatClient, args: argparse.Namespace) -> int:
    try:
        fields: dict[str, Any] = {"input": json.loads(args.input), "paused": args.paused}
    except ValueError as exc:
        print(f"taskbeat: --input is not JSON: {exc}", file=sys.stderr)
        return EXIT_API_ERROR
    fields.update({o: getattr(args, o) for o in CREATE_OPTIONS if getattr(args, o) is not None})
    return _show(client.create_schedule(args.name, args.algorithm, args.cron, **fields), args)


def set_fields(client: TaskbeatClient, args: argparse.Namespace) -> int:
    return _show(client.change_schedule(args.name, **dict(args.fields)), args)


def delete(client: TaskbeatClient, args: argparse.Namespace) -> int:
    client.delete_schedule(args.name)
    if args.json:
        emit_json({"deleted": args.name})
    else:
        print(f"schedule {args.name} deleted")
    return EXIT_OK


def pause(client: TaskbeatClient, args: argparse.Namespace) -> int:
    return _show(client.pause_schedule(args.name), args)


def resume(client: TaskbeatClient, args: argparse.Namespace) -> int:
    return _show(client.resume_schedule(args.name), args)


def _add_create(actions: "SubCommands") -> None:
    parser = add_api_command(actions, "create", create, "fire an algorithm at every tick")
    parser.add_argument("name", help="letters, digits, . _ -")
    parser.add_argument("algorithm", help="e.g. hello")
    parser.add_argument("cron", help="'*/5 * * * *', six fields with seconds, '@every 30s'")
    parser.add_argument("--input", default="{}", help="the input of each task, a JSON object")
    parser.add_argument("--timezone", help="IANA name, e.g. Europe/Berlin (default UTC)")
    parser.add_argument("--overlap", choices=["skip", "allow"], help="default skip")
    parser.add_argument("--catchup-s", type=int, help="after downtime, catch up a tick this young")
    parser.add_argument("--priority", type=int, help="0-9 (default: the algorithm's)")
    parser.add_argument("--paused", action="store_true", help="create it paused")


def add_commands(commands: "SubCommands") -> None:
    """Adds `schedules …` to the `taskbeat` parser."""
    group = commands.add_parser("schedules", help="tasks fired by cron or an interval")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_api_command(actions, "list", list_schedules, "every schedule with its next tick")
    _add_create(actions)
    for name, handler, help in [
        ("show", show, "one schedule, its next tick and the last tasks it made"),
        ("set", set_fields, "change fields: set NAME cron='@every 5m' priority=3"),
        ("delete", delete, "fire it no more (its tasks stay)"),
        ("pause", pause, "fire no tick until resumed"),
        ("resume", resume, "fire again from the next tick"),
    ]:
        parser = add_api_command(actions, name, handler, help)
        parser.add_argument("name", help="the schedule")
        if name == "set":
            parser.add_argument("fields", nargs="+", type=parse_assignment, help="field=value")
