"""The `taskbeat` console script: one subcommand group per module of app.cli."""

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from app.cli import algorithms, bulk, heartbeats, keys, schedules, serve, tasks


def version_text() -> str:
    """The package version, and the API version of the C library it loads."""
    from app.native import NativeError, load_library

    try:
        native = f"C library API {load_library().version}"
    except NativeError as exc:
        native = f"C library not loaded: {exc}"
    return f"taskbeat {metadata.version('taskbeat')} ({native})"


class _VersionAction(argparse.Action):
    """`--version`, which loads the C library only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskbeat", description="An async task service with no message queue."
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True)
    serve.add_commands(commands)
    tasks.add_commands(commands)
    bulk.add_commands(commands)
    algorithms.add_commands(commands)
    schedules.add_commands(commands)
    heartbeats.add_command(commands)
    keys.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    exit_status = args.handler(args)
    if exit_status:
        sys.exit(exit_status)
