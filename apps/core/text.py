"""Text that PostgreSQL can store."""

from __future__ import annotations

import re

# PostgreSQL text and jsonb hold neither U+0000 nor a lone surrogate (half an emoji, which JSON
# can escape as "\ud83d"; some PDF fonts map glyphs to U+0000).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> str:
    """`text` with U+0000 and lone surrogates replaced by U+FFFD, so it is stored, not refused."""
    return _UNSTORABLE.sub("\ufffd", text)


def unstorable_character(text: str) -> str | None:
    """The first character of `text` PostgreSQL cannot store, as a code point ("U+0000"); None if none."""
    found = _UNSTORABLE.search(text)
    return f"U+{ord(found.group()):04X}" if found else None
