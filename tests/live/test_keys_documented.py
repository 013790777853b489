"""The README's Redis key table (what monitors read) and app.live.keys say the same: every
key in one is in the other, with the same type."""

import inspect
import re
from pathlib import Path

from app.live.keys import RedisKeys

README = Path(__file__).resolve().parents[2] / "README.md"
# `taskbeat:hb:{task_id}` and `taskbeat:hb:{t}` are one key: placeholders compare as `{}`.
PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def readme_table() -> dict[str, str]:
    """key pattern -> type, from the first table under the "Redis keys" heading."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Redis keys.*?$(.*?)^## ", text, re.MULTILINE | re.DOTALL)
    assert section is not None, "README.md has no '## Redis keys' section"
    rows: dict[str, str] = {}
    for line in section.group(1).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and cells[0].startswith("`"):
            key = PLACEHOLDER.sub("{}", cells[0].strip("`"))
            assert key not in rows, f"README lists {key} twice"
            rows[key] = cells[1]
    assert rows, "the README's Redis keys section has no table rows"
    return rows


def keys_module() -> dict[str, str]:
    """key pattern -> type (the docstring's first words), for every key RedisKeys names."""
    keys = RedisKeys()  # the default prefix, as the README writes the keys
    found: dict[str, str] = {}
    for name, member in vars(RedisKeys).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            key, doc = getattr(keys, name), member.__doc__
        elif inspect.isfunction(member):
            arguments = [f"{{{p}}}" for p in list(inspect.signature(member).parameters)[1:]]
            key, doc = member(keys, *arguments), member.__doc__
        else:
            continue  # the prefix field
        assert doc, f"RedisKeys.{name} has no docstring saying its type"
        found[PLACEHOLDER.sub("{}", key)] = doc.split(":", 1)[0]
    return found


def test_the_readme_lists_exactly_the_keys_of_the_keys_module() -> None:
    documented, named = readme_table(), keys_module()
    assert sorted(set(named) - set(documented)) == [], "keys missing from the README table"
    assert sorted(set(documented) - set(named)) == [], "README keys that RedisKeys does not name"


def test_the_readme_gives_each_key_the_type_the_keys_module_says() -> None:
    documented, named = readme_table(), keys_module()
    for key, kind in named.items():
        # the module may say more ("string (integer)") than the README's type column
        assert kind.startswith(documented[key]), (key, documented[key], kind)
