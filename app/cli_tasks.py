"""`taskbeat tasks ...`, `taskbeat stats`, `taskbeat algorithms`: the API from a shell.

Exit status: 0 ok, 1 API error (or a wait that ran out of time), 3 server unreachable.
"""

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any, TextIO

from app.cli_output import cell, emit_json, print_table
from app.client import (
    DEFAULT_URL,
    TaskbeatAPIError,
    TaskbeatClient,
    TaskbeatConnectionError,
)
from app.domain.models import TaskPublic, TaskStatus

EXIT_OK, EXIT_API_ERROR, EXIT_UNREACHABLE = 0, 1, 3
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
    "created_at",
    "started_at",
    "finished_at",
    "heartbeat_at",
)
BAR_WIDTH = 30

Handler = Callable[[TaskbeatClient, argparse.Namespace], int]


def task_json(task: TaskPublic) -> dict[str, Any]:
    return task.model_dump(mode="json")


def print_task(task: TaskPublic) -> None:
    values = task_json(task)
    width = max(len(name) for name in TASK_FIELDS)
    for name in TASK_FIELDS:
        if values.get(name) is not None:
            print(f"{name.ljust(width)}  {cell(values[name])}")


class ProgressBar:
    """A one-line bar redrawn with a carriage return; only on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.drawn = False

    def draw(self, progress: int, status: str) -> None:
        done = BAR_WIDTH * max(0, min(progress, 100)) // 100
        bar = "#" * done + "." * (BAR_WIDTH - done)
        line = f"\r[{bar}] {progress:3d}% {status}"
        columns = shutil.get_terminal_size().columns
        self.stream.write(line[: columns - 1].ljust(min(len(line), columns - 1)))
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * (BAR_WIDTH + 20) + "\r")
            self.stream.flush()


def _bar() -> ProgressBar | None:
    return ProgressBar(sys.stdout) if sys.stdout.isatty() else None


def wait_with_bar(client: TaskbeatClient, task_id: str, timeout_s: float) -> TaskPublic:
    """Waits for the task, drawing its progress from the event stream; a plain long-poll
    when stdout is not a terminal."""
    bar = _bar()
    if bar is None:
        return client.wait(task_id, timeout_s)
    task = client.get(task_id)
    try:
        bar.draw(task.progress, task.status)
        if not TaskStatus(task.status).finished:
            _follow(client, task, bar, timeout_s)
        return client.get(task_id)
    finally:
        bar.clear()


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
    task = client.create(args.algorithm, task_input, timeout_s=args.timeout_s)
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


def list_tasks(client: TaskbeatClient, args: argparse.Namespace) -> int:
    page = client.list(
        status=args.status, algorithm=args.algorithm, limit=args.limit, cursor=args.cursor
    )
    if args.json:
        emit_json({"items": [task_json(t) for t in page.items], "next_cursor": page.next_cursor})
        return EXIT_OK
    rows = [
        (t.task_id, t.algorithm, t.status, f"{t.progress}%", t.created_at.isoformat(), t.error)
        for t in page.items
    ]
    print_table(("TASK_ID", "ALGORITHM", "STATUS", "PROGRESS", "CREATED_AT", "ERROR"), rows)
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor}")
    return EXIT_OK


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


def run(handler: Handler, args: argparse.Namespace) -> int:
    """Runs one command against the API; turns client errors into exit statuses."""
    try:
        with TaskbeatClient(args.url) as client:
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
    options.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return options


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Adds `tasks`, `stats` and `algorithms` to the `taskbeat` parser."""
    api = [_api_options()]

    def command(
        parent: "argparse._SubParsersAction[argparse.ArgumentParser]",
        name: str,
        handler: Handler,
        help: str,
    ) -> argparse.ArgumentParser:
        parser = parent.add_parser(name, parents=api, help=help, description=help)
        parser.set_defaults(handler=lambda args: run(handler, args))
        return parser

    tasks = commands.add_parser("tasks", help="create, read, list, wait for and cancel tasks")
    verbs = tasks.add_subparsers(dest="verb", required=True)

    create_parser = command(verbs, "create", create, "create a task")
    create_parser.add_argument("algorithm", help="e.g. hello")
    create_parser.add_argument("--input", default="{}", help="the input, a JSON object")
    create_parser.add_argument("--timeout-s", type=int, help="the task's own timeout")
    create_parser.add_argument("--wait", action="store_true", help="wait until it finishes")
    create_parser.add_argument(
        "--wait-timeout-s", type=float, default=3600.0, help="give up waiting after this"
    )

    command(verbs, "get", get, "show a task").add_argument("task_id")

    list_parser = command(verbs, "list", list_tasks, "list tasks, newest first")
    list_parser.add_argument("--status", choices=[str(s) for s in TaskStatus])
    list_parser.add_argument("--algorithm")
    list_parser.add_argument("--limit", type=int, default=20, help="at most this many")
    list_parser.add_argument("--cursor", help="the next page, as the previous one printed")

    wait_parser = command(verbs, "wait", wait, "wait until a task finishes, with progress")
    wait_parser.add_argument("task_id")
    wait_parser.add_argument("--timeout-s", type=float, default=3600.0, help="give up after this")

    command(verbs, "cancel", cancel, "cancel a pending or running task").add_argument("task_id")
    command(commands, "stats", stats, "task totals and active counts")
    command(commands, "algorithms", algorithms, "registered algorithms")
