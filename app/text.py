"""Text from clients, checked in one place: ids and numbers are ASCII digits, and strings
that reach the database are ones every supported database can hold.

Two traps behind these checks. `str.isdigit()` and a regex `\\d` take "²", "٣" or "𑽑",
which `int()` reads as another number or refuses (a 500). And JSON may carry text that no
column can store: a lone surrogate (`"\\ud800"` is valid JSON, but not encodable as UTF-8)
or NUL (PostgreSQL's text refuses it; SQLite keeps it, and the two must answer alike).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

ASCII_ID = re.compile(r"[0-9]{1,18}")
ASCII_ONLY = "ASCII digits only (0-9)"


def ascii_id(text: str) -> int | None:
    """`text` as an id when it is 1 to 18 ASCII digits; None for anything else."""
    return int(text) if ASCII_ID.fullmatch(text) else None


def has_other_digits(text: str) -> bool:
    """Digits outside 0-9 ("²", "٣"): refused wherever a number is read from text."""
    return any(ch.isdigit() and not ch.isascii() for ch in text)


def is_unicode(text: str) -> bool:
    """False for text holding a lone surrogate, which no encoding can write."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """`text`, with any lone surrogate written as its escape ("\\ud800"), so that it can be
    echoed in a JSON answer."""
    return text if is_unicode(text) else text.encode("utf-8", "backslashreplace").decode()


def storable(value: Any) -> Any:
    """The check of `db_text`: refuses text a database cannot store or compare. It runs
    before pydantic's own str check, whose message for a lone surrogate names no cause."""
    if isinstance(value, str) and not is_unicode(value):
        raise ValueError("must be valid Unicode text (no lone surrogates)")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL (U+0000) characters")
    return value


def db_text(max_length: int, *checks: Callable[[Any], Any]) -> Any:
    """A str field or query parameter whose value goes to the database (stored, or compared
    in a filter), with more `checks` of the text besides storable. The checks come after the
    length in the annotation: before it, they would make FastAPI publish the length as an
    unknown keyword instead of maxLength."""
    validators = (storable, *checks)
    return Annotated[(str, Field(max_length=max_length), *map(BeforeValidator, validators))]


def ascii_digits(value: Any) -> Any:
    """A validator for text that holds numbers (an lr ratio, a filter on one)."""
    if isinstance(value, str) and has_other_digits(value):
        raise ValueError(ASCII_ONLY)
    return value
