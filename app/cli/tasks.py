"""`taskbeat tasks create | get | list | wait | cancel | retry | delete`: tasks from a shell.

Exit status: 0 ok, 1 API error (or a wait that ran out of time), 3 server unreachable.
"""

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from app.cli.api import add_api_command
from app.cli.exits import EXIT_API_ERROR, EXIT_OK
from app.cli.output import ProgressBar, emit_json, print_fields, print_table
from app.client import TaskbeatClient
from app.domain.models import TaskPublic, TaskStatus

if TYPE_CHECKING:
    from app.cli.api import SubCommands

# Fields of a task worth a line in the human view, in this order.
TASK_FIELDS = (
    "task_id",
    "algorithm",
    "status",
    "progress",
    "result",
    "error",
    "input",
    "attempt",
    "poll_failures",
    "timeout_s",
    "run_at",
    "next_attempt_at",
    "created_at",
    "started_at",
    "finished_at",
    "heartbeat_at",
)


def task_json(task: TaskPublic) -> dict[str, Any]:
    return task.model_dump(mode="json")


def print_task(task: TaskPublic) -> None:
    values = task_json(task)
    print_fields([(name, values[name]) for name in TASK_FIELDS if values.get(name) is not None])


def wait_with_bar(client: TaskbeatClient, task_id: str, timeout_s: float) -> TaskPublic:
    """Waits for the task, drawing its progress from the event stream; a plain long-poll
    when stdout is not a terminal."""
    if not sys.stdout.isatty():
        return client.wait(task_id, timeout_s)
    task = client.get(task_id)
    with ProgressBar() as bar:
        bar.draw(task.progress, task.status)
        if not TaskStatus(task.status).finished:
            _follow(client, task, bar, timeout_s)
    return client.get(task_id)


def _follow(client: TaskbeatClient, task: TaskPublic, bar: ProgressBar, timeout_s: float) -> None:
    progress, status = task.progress, str(task.status)
    for event in client.stream(task.task_id, timeout_s=timeout_s):
        progress = int(event.data.get("progress", progress))
        status = str(event.data.get("status", status))
        bar.draw(progress, status)


def _show_task(task: TaskPublic, args: argparse.Namespace) -> None:
    if args.json:
        emit_json(task_json(task))
    else:
        print_task(task)


def _finished_or_late(task: TaskPublic, timeout_s: float) -> int:
    if TaskStatus(task.status).finished:
        return EXIT_OK
    print(
        f"taskbeat: task {task.task_id} still {task.status} after {timeout_s:g} s", file=sys.stderr
    )
    return EXIT_API_ERROR


def create(client: TaskbeatClient, args: argparse.Namespace) -> int:
    try:
        task_input = json.loads(args.input)
    except ValueError as exc:
        print(f"taskbeat: --input is not JSON: {exc}", file=sys.stderr)
        return EXIT_API_ERROR
    task = client.create(
        args.algorithm,
        task_input,
        timeout_s=args.timeout_s,
        run_at=args.run_at,
        delay_s=args.delay,
        idempotency_key=args.idempotency_key,
    )
    if args.wait:
        task = wait_with_bar(client, task.task_id, args.wait_timeout_s)
    _show_task(task, args)
    return _finished_or_late(task, args.wait_timeout_s) if args.wait else EXIT_OK


def get(client: TaskbeatClient, args: argparse.Namespace) -> int:
    _show_task(client.get(args.task_id), args)
    return EXIT_OK


def wait(client: TaskbeatClient, args: argparse.Namespace) -> int:
    task = wait_with_bar(client, args.task_id, args.timeout_s)
    _show_task(task, args)
    return _finished_or_late(task, args.timeout_s)


def cancel(client: TaskbeatClient, args: argparse.Namespace) -> int:
    _show_task(client.cancel(args.task_id), args)
    return EXIT_OK


def delete(client: TaskbeatClient, args: argparse.Namespace) -> int:
    client.delete(args.task_id)
    if args.json:
        emit_json({"task_id": args.task_id, "deleted": True})
    else:
        print(f"deleted {args.task_id}")
    return EXIT_OK


def retry(client: TaskbeatClient, args: argparse.Namespace) -> int:
    _show_task(client.retry(args.task_id), args)
    return EXIT_OK


def list_tasks(client: TaskbeatClient, args: argparse.Namespace) -> int:
    page = client.list(
        status=args.status,
        algorithm=args.algorithm,
        schedule=args.schedule,
        limit=args.limit,
        cursor=args.cursor,
    )
    if args.json:
        emit_json(page.model_dump(mode="json"))
        return EXIT_OK
    rows = [
        (t.task_id, t.algorithm, t.status, f"{t.progress}%", t.created_at.isoformat(), t.error)
        for t in page.items
    ]
    print_table(("TASK_ID", "ALGORITHM", "STATUS", "PROGRESS", "CREATED_AT", "ERROR"), rows)
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor}")
    return EXIT_OK


def add_commands(commands: "SubCommands") -> None:
    """Adds `tasks` and its verbs to the `taskbeat` parser."""
    tasks = commands.add_parser(
        "tasks", help="create, read, list, wait for, cancel and delete tasks"
    )
    verbs = tasks.add_subparsers(dest="verb", required=True)

    create_parser = add_api_command(verbs, "create", create, "create a task")
    create_parser.add_argument("algorithm", help="e.g. hello")
    create_parser.add_argument("--input", default="{}", help="the input, a JSON object")
    create_parser.add_argument("--timeout-s", type=int, help="the task's own timeout")
    start = create_parser.add_mutually_exclusive_group()
    start.add_argument("--run-at", help="start it then: ISO-8601 with an offset (…T09:00+02:00)")
    start.add_argument("--delay", type=float, metavar="SECONDS", help="start it this much later")
    create_parser.add_argument(
        "--idempotency-key", help="a repeat with this key answers the first task, not a new one"
    )
    create_parser.add_argument("--wait", action="store_true", help="wait until it finishes")
    create_parser.add_argument(
        "--wait-timeout-s", type=float, default=3600.0, help="give up waiting after this"
    )

    add_api_command(verbs, "get", get, "show a task").add_argument("task_id")

    list_parser = add_api_command(verbs, "list", list_tasks, "list tasks, newest first")
    list_parser.add_argument("--status", choices=[str(s) for s in TaskStatus])
    list_parser.add_argument("--algorithm")
    list_parser.add_argument("--schedule", help="only the tasks this schedule made")
    list_parser.add_argument("--limit", type=int, default=20, help="at most this many")
    list_parser.add_argument("--cursor", help="the next page, as the previous one printed")

    wait_parser = add_api_command(verbs, "wait", wait, "wait until a task finishes, with progress")
    wait_parser.add_argument("task_id")
    wait_parser.add_argument("--timeout-s", type=float, default=3600.0, help="give up after this")

    add_api_command(verbs, "cancel", cancel, "cancel a pending or running task").add_argument(
        "task_id"
    )
    add_api_command(
        verbs, "retry", retry, "run a failed, cancelled or timed-out task again"
    ).add_argument("task_id")
    add_api_command(verbs, "delete", delete, "delete a finished task").add_argument("task_id")
