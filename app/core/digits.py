"""Numbers in headers and tokens: ASCII digits with a length bound, never `isdigit()` then
`int()` (which lets `²` through to a ValueError, and thousands of digits to a slow parse)."""


def ascii_int(text: str, *, max_digits: int) -> int:
    """The value of `text` if it is 1 to `max_digits` ASCII digits; ValueError otherwise."""
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        raise ValueError(f"expected 1 to {max_digits} ASCII digits")
    return int(text)
