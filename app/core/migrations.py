"""Applies the Alembic migrations (blocking: call from a worker thread in async code)."""

from pathlib import Path

from alembic.config import Config

from alembic import command

REPO_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    ini = REPO_ROOT / "alembic.ini"
    if not ini.is_file():
        raise RuntimeError(f"migrations not found at {REPO_ROOT}: install taskbeat editable")
    config = Config(str(ini))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade_to_head(database_url: str) -> None:
    """Brings the database at `database_url` to the newest schema; idempotent."""
    sqlite_path = database_url.split("///", 1)[-1] if database_url.startswith("sqlite") else ""
    if sqlite_path and sqlite_path != ":memory:":
        Path(sqlite_path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), "head")
