"""The TOML configuration file (TASKBEAT_CONFIG_FILE): settings by their names, algorithm
policies under [algorithms.<name>], engines as [[remote_algorithms]]. A broken file stops
the start with a message that names its line."""

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

CONFIG_FILE_VARIABLE = "TASKBEAT_CONFIG_FILE"


class ConfigFileError(ValueError):
    """The configuration file cannot be read; the message names the file and the line."""


def config_file_path(init_kwargs: dict[str, Any]) -> Path | None:
    named = init_kwargs.get("config_file") or os.environ.get(CONFIG_FILE_VARIABLE)
    return Path(named) if named else None


def read_config_file(path: Path, known: set[str]) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path}: not valid TOML: {exc}") from exc
    for key in document:
        if key not in known:
            line = line_of(path, (key,))
            where = f" line {line}" if line else ""
            raise ConfigFileError(f"{path}{where}: unknown setting {key!r}")
    return document


def line_of(path: Path, loc: tuple[str | int, ...]) -> int | None:
    """The line that sets the value at `loc` (a setting, then table keys), if found."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    *tables, key = [str(part) for part in loc if not isinstance(part, int)] or [""]
    section = ".".join(tables)
    in_section = not section
    for number, text in enumerate(lines, start=1):
        stripped = text.strip()
        header = re.fullmatch(r"\[\[?\s*([^\]]+?)\s*\]\]?", stripped)
        if header:
            name = header.group(1).replace('"', "").replace(" ", "")
            if section and name == section and not key:
                return number
            in_section = name == section if section else False
            continue
        if in_section and re.match(rf'"?{re.escape(key)}"?\s*=', stripped):
            return number
    return None


class ConfigFileSource(PydanticBaseSettingsSource):
    """Below the environment and `.env`: a variable set there wins over the file."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.path = path
        known = set(settings_cls.model_fields)
        self.values = read_config_file(path, known) if path is not None else {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)
