"""Applies the Alembic migrations (blocking: call from a worker thread in async code).

Alembic is imported only when there is something to apply: a start on a database that is
already at the head reads the scripts' revision ids from their files and the database's
from `alembic_version`, which costs milliseconds instead of the library's import."""

import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.core.config import sqlite_file
from app.core.db import create_engine

if TYPE_CHECKING:
    from alembic.config import Config

# The repository's top-level alembic/ folder: an editable install cannot map a package
# without __init__.py (app.migrations) into the source tree, so it reads them from here.
SOURCE_TREE_MIGRATIONS = Path(__file__).resolve().parents[2] / "alembic"

# `revision: str = "0007"` and `down_revision: str | None = "0006"` (or a tuple of them,
# for a merge) at the top of each script, as Alembic's template writes them.
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"']+)["']""")


def migrations_dir() -> Path:
    """The scripts of the `app.migrations` package wherever it was installed or bundled
    (a wheel, the one-file build), else the source tree's alembic/: Alembic reads files."""
    try:
        return Path(str(resources.files("app.migrations").joinpath("env.py"))).parent
    except ModuleNotFoundError:
        return SOURCE_TREE_MIGRATIONS


def head_revisions(scripts: Path | None = None) -> set[str]:
    """The revisions no script builds on, read from the scripts' text."""
    revisions: set[str] = set()
    built_on: set[str] = set()
    for script in ((scripts or migrations_dir()) / "versions").glob("*.py"):
        for name, value in _REVISION_LINE.findall(script.read_text(encoding="utf-8")):
            found = set(_QUOTED.findall(value))
            (revisions if name == "revision" else built_on).update(found)
    return revisions - built_on


def database_revisions(database_url: str) -> set[str]:
    """The revisions `alembic_version` holds; empty for a new database (or no table)."""
    database_file = sqlite_file(database_url)
    if database_file is not None and not database_file.exists():
        return set()
    engine = create_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return set(rows)
    except SQLAlchemyError:
        return set()
    finally:
        engine.dispose()


def alembic_config(database_url: str) -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade_to_head(database_url: str) -> None:
    """Brings the database at `database_url` to the newest schema; idempotent. Returns at
    once when it is at the head already; otherwise Alembic applies what is missing (and
    refuses a database newer than these scripts)."""
    heads = head_revisions()
    if heads and database_revisions(database_url) == heads:
        return
    from alembic import command

    database_file = sqlite_file(database_url)
    if database_file is not None:
        database_file.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), "head")
