"""JSON from outside, parsed strictly: what the service stores must be JSON again.

orjson refuses NaN and Infinity, numbers out of a double's range (so 1e309 and a 5,000-digit
integer), nesting past 1,024 levels and invalid UTF-8; on top, this refuses NUL characters
(PostgreSQL can store none) and nesting past MAX_DEPTH (answers are encoded recursively)."""

from typing import Any

import orjson

MAX_DEPTH = 64


class JSONRefused(ValueError):
    """Bytes that are not JSON the service can store; the message says what is wrong."""


def _reason(exc: orjson.JSONDecodeError) -> str:
    message = exc.msg
    if "infinity" in message or "NaN" in message:
        return "a number is out of range (JSON numbers here must be finite doubles)"
    if "depth" in message or "recursion" in message:
        return f"nested too deep (at most {MAX_DEPTH} levels)"
    if "UTF-8" in message or "surrogate" in message:
        return "not valid UTF-8"
    return f"not valid JSON: {message} at char {exc.pos}"


def check_storable(value: Any) -> None:
    """Raises JSONRefused for a NUL character or nesting past MAX_DEPTH in `value`."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise JSONRefused("a string holds a NUL character (\\u0000)")
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise JSONRefused("a number is not finite (NaN or Infinity)")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise JSONRefused(f"nested too deep (at most {MAX_DEPTH} levels)")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def loads(raw: bytes | str) -> Any:
    """The parsed value; JSONRefused when `raw` is not JSON or not storable."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JSONRefused(_reason(exc)) from exc
    check_storable(value)
    return value
