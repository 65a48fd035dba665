"""Limits on JSON from outside: how deep it nests, and the characters PostgreSQL's jsonb refuses.

Both are valid JSON, so neither the parser nor DRF's JSONField refuses them; unchecked, a
deep body exhausts Python's recursion (in the parser, `json.dumps` or the database driver)
and a NUL or a lone surrogate fails the INSERT: a 500 instead of a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from apps.core.text import unstorable_character

# Far beyond any payload the API takes (a flow graph nests about 7 levels); far below the
# ~1,000 frames Python's recursion allows the parser and `json.dumps`.
MAX_JSON_DEPTH = 64


def json_too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether objects and arrays nest more than `limit` levels (walked without recursion)."""
    stack: list[tuple[Mapping[Any, Any] | list[Any], int]] = [(value, 1)] if isinstance(value, Mapping | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, Mapping) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, Mapping | list))
    return False


def json_unstorable_character(value: Any) -> str | None:
    """The first character jsonb cannot store (NUL, a lone surrogate) in a key or a string, as a code point."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and (character := unstorable_character(item)) is not None:
            return character
    return None


def json_too_deep_message() -> str:
    return _("The JSON is nested more than %(max)d levels deep.") % {"max": MAX_JSON_DEPTH}


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing JSON nested beyond `MAX_JSON_DEPTH` with a 400."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(json_too_deep_message()) from exc
        if json_too_deep(data):
            raise ParseError(json_too_deep_message())
        return data
