"""Applies the Alembic migrations (blocking: call from a worker thread in async code)."""

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config

from app.core.config import sqlite_file

# The repository's top-level alembic/ folder: an editable install cannot map a package
# without __init__.py (app.migrations) into the source tree, so it reads them from here.
SOURCE_TREE_MIGRATIONS = Path(__file__).resolve().parents[2] / "alembic"


def migrations_dir() -> Path:
    """The scripts of the `app.migrations` package wherever it was installed or bundled
    (a wheel, the one-file build), else the source tree's alembic/: Alembic reads files."""
    try:
        return Path(str(resources.files("app.migrations").joinpath("env.py"))).parent
    except ModuleNotFoundError:
        return SOURCE_TREE_MIGRATIONS


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade_to_head(database_url: str) -> None:
    """Brings the database at `database_url` to the newest schema; idempotent."""
    database_file = sqlite_file(database_url)
    if database_file is not None:
        database_file.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), "head")
