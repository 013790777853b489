"""`taskbeat keys create | list | revoke`: API keys, straight in the database
(TASKBEAT_DATABASE_URL), so that the first admin key needs no running service.

Exit status: 0 ok, 1 no such key (revoke) or a bad value, 3 database unreachable.
"""

import argparse
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from app.cli.exits import EXIT_API_ERROR, EXIT_OK, EXIT_UNREACHABLE
from app.cli.output import emit_json, print_fields, print_table
from app.cli.serve import _settings
from app.domain.keys import ApiKeyCreate, ApiKeyPublic, Role, is_key_id, new_secret
from app.domain.models import utcnow
from app.service.keys import new_api_key
from app.store import keys as key_rows

if TYPE_CHECKING:
    from app.cli.api import SubCommands

T = TypeVar("T")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
KEY_COLUMNS = ("key_id", "name", "role", "created_at", "expires_at", "revoked_at")


def duration_s(text: str) -> int:
    """Seconds of `90d`, `12h`, `30m`, `45s` (or a bare number of seconds)."""
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90d, 12h, 30m)")
    return int(match[1]) * UNIT_S[match[2] or "s"]


def _in_database(work: Callable[[Connection], T]) -> T:
    from app.core.db import create_engine
    from app.core.migrations import upgrade_to_head

    url = _settings().database_url
    upgrade_to_head(url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            return work(conn)
    finally:
        engine.dispose()


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except SQLAlchemyError as exc:
            print(f"taskbeat: the database is unavailable: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE

    return run


def _public(key: ApiKeyPublic) -> dict[str, Any]:
    return key.model_dump(mode="json")


def create(args: argparse.Namespace) -> int:
    request = ApiKeyCreate(
        name=args.name,
        role=Role(args.role),
        expires_in_s=args.expires_in,
        rate_per_s=args.rate_per_s,
        max_unfinished=args.max_unfinished,
    )
    secret = new_secret()
    key = new_api_key(request, secret=secret, created_by=None)
    _in_database(lambda conn: key_rows.insert_key(conn, key))
    shown = {**_public(ApiKeyPublic.model_validate(key, from_attributes=True)), "secret": secret}
    if args.json:
        emit_json(shown)
    else:
        print_fields([(name, shown[name]) for name in (*KEY_COLUMNS, "secret")])
        print("\nThe secret is shown this once; only its hash is stored.", file=sys.stderr)
    return EXIT_OK


def list_keys(args: argparse.Namespace) -> int:
    found = [_public(key) for key in _in_database(key_rows.list_keys)]
    if args.json:
        emit_json({"items": found})
    else:
        print_table(
            tuple(column.upper() for column in KEY_COLUMNS),
            [tuple(key[column] for column in KEY_COLUMNS) for key in found],
        )
    return EXIT_OK


def revoke(args: argparse.Namespace) -> int:
    if not is_key_id(args.key_id) or not _in_database(
        lambda conn: key_rows.revoke(conn, args.key_id, at=utcnow())
    ):
        print(f"taskbeat: no key {args.key_id} in force", file=sys.stderr)
        return EXIT_API_ERROR
    if args.json:
        emit_json({"key_id": args.key_id, "revoked": True})
    else:
        print(f"revoked {args.key_id} (no replica accepts it after a second)")
    return EXIT_OK


def add_commands(commands: "SubCommands") -> None:
    """Adds `keys create | list | revoke` to the `taskbeat` parser."""
    group = commands.add_parser("keys", help="API keys, in the database (no service needed)")
    actions = group.add_subparsers(dest="action", required=True)
    json_option = argparse.ArgumentParser(add_help=False)
    json_option.add_argument("--json", action="store_true", help="print machine-readable JSON")

    made = actions.add_parser(
        "create", parents=[json_option], help="create a key; prints its secret once"
    )
    made.add_argument("--name", required=True)
    made.add_argument("--role", required=True, choices=[role.value for role in Role])
    made.add_argument("--expires-in", type=duration_s, help="e.g. 90d, 12h (default: never)")
    made.add_argument(
        "--rate-per-s", type=int, help="requests per second (default TASKBEAT_KEY_RATE_PER_S)"
    )
    made.add_argument(
        "--max-unfinished",
        type=int,
        help="unfinished tasks at once (default TASKBEAT_KEY_MAX_UNFINISHED)",
    )
    made.set_defaults(handler=_guarded(create))

    listed = actions.add_parser("list", parents=[json_option], help="every key (never a secret)")
    listed.set_defaults(handler=_guarded(list_keys))

    revoked = actions.add_parser("revoke", parents=[json_option], help="revoke a key")
    revoked.add_argument("key_id")
    revoked.set_defaults(handler=_guarded(revoke))
