"""Applies the Alembic migrations (blocking: call from a worker thread in async code)."""

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config

# The repository's top-level alembic/ folder, for a checkout that was never installed.
SOURCE_TREE_MIGRATIONS = Path(__file__).resolve().parents[2] / "alembic"


def migrations_folder() -> Path:
    """The Alembic scripts: the package app.migrations once installed (editable or not)."""
    spec = importlib.util.find_spec("app.migrations")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return SOURCE_TREE_MIGRATIONS


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_folder()))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade_to_head(database_url: str) -> None:
    """Brings the database at `database_url` to the newest schema; idempotent."""
    sqlite_path = database_url.split("///", 1)[-1] if database_url.startswith("sqlite") else ""
    if sqlite_path and sqlite_path != ":memory:":
        Path(sqlite_path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), "head")
