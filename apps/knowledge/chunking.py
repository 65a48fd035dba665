"""Blocks → passages: structure-aware, token-bounded, overlapping, each with its source reference."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from apps.knowledge.extraction import Block

# A word longer than 16 characters counts (and is cut) as several tokens, as e5's word pieces
# cut it: so text without spaces (a base64 image, a hash, a URL) still has a token count.
_TOKEN = re.compile(r"\w{1,16}|[^\w\s]", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+")
HEADING_SEPARATOR = " > "


def token_count(text: str) -> int:
    """Tokens as e5's tokenizer sees them, approximately: words and punctuation marks."""
    return len(_TOKEN.findall(text))


@dataclass(frozen=True)
class Passage:
    text: str
    heading_path: str
    page: int | None
    token_count: int

    @property
    def embed_text(self) -> str:
        """The text that is embedded and searched: the heading path gives a passage its context."""
        return f"{self.heading_path}\n{self.text}" if self.heading_path else self.text

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.embed_text.encode()).hexdigest()


@dataclass
class _Unit:
    text: str
    tokens: int
    new_block: bool


def _windows(text: str, max_tokens: int) -> list[tuple[str, int]]:
    """The text cut every `max_tokens` tokens, with each piece's token count, in one pass.

    Pieces start and end on token boundaries, so a piece counts exactly its tokens again; a
    word without spaces is cut inside (see _TOKEN) rather than left whole.
    """
    spans = [match.span() for match in _TOKEN.finditer(text)]
    return [
        (text[window[0][0] : window[-1][1]], len(window))
        for window in (spans[start : start + max_tokens] for start in range(0, len(spans), max_tokens))
    ]


def _units(block: Block, max_tokens: int) -> list[_Unit]:
    """Sentences of a block (whole if it fits), long sentences cut into token windows."""
    text = f"- {block.text}" if block.kind == "item" else block.text
    tokens = token_count(text)
    if tokens <= max_tokens:
        return [_Unit(text, tokens, True)]
    units: list[_Unit] = []
    for sentence in _SENTENCE_END.split(text):
        for piece, count in _windows(sentence, max_tokens):
            units.append(_Unit(piece, count, not units))
    return units


@dataclass
class _Heading:
    level: int
    text: str
    page: int | None
    covered: bool = False  # a passage has it on its heading path


def passages_build(blocks: list[Block], *, max_tokens: int, overlap_tokens: int) -> list[Passage]:
    passages: list[Passage] = []
    headings: list[_Heading] = []
    current: list[_Unit] = []
    fresh = 0  # units in `current` that are not overlap carried from the previous passage
    page: int | None = None

    def heading_path() -> str:
        return HEADING_SEPARATOR.join(heading.text[:120] for heading in headings)

    def add(text: str, passage_page: int | None, tokens: int) -> None:
        passages.append(Passage(text, heading_path(), passage_page, tokens))
        for heading in headings:
            heading.covered = True

    def heading_pop() -> None:
        # A heading with nothing under it (a Markdown outline, a PDF's last line) is still
        # searchable text: it becomes a passage of its own, under its parents' path.
        heading = headings.pop()
        if not heading.covered:
            for text, tokens in _windows(heading.text, max_tokens):
                add(text, heading.page, tokens)

    def flush(*, carry: bool) -> None:
        nonlocal current, fresh
        if fresh:
            text = ""
            for unit in current:
                text += ("\n" if unit.new_block else " ") + unit.text if text else unit.text
            add(text, page, sum(u.tokens for u in current))
        tail: list[_Unit] = []
        if carry and fresh:
            for unit in reversed(current):
                if sum(u.tokens for u in tail) + unit.tokens > overlap_tokens:
                    break
                tail.insert(0, unit)
        current, fresh = tail, 0

    for block in blocks:
        if block.kind == "heading":
            flush(carry=False)
            level = block.level or 1
            while headings and headings[-1].level >= level:
                heading_pop()
            headings.append(_Heading(level, block.text, block.page))
            continue
        if block.page != page:
            flush(carry=False)
            page = block.page
        if block.kind == "qa":
            # One question/answer pair is one passage: it is retrieved and cited whole (unless
            # it is longer than a passage may be).
            flush(carry=False)
            for text, tokens in _windows(block.text, max_tokens):
                add(text, page, tokens)
            continue
        for unit in _units(block, max_tokens):
            if fresh and sum(u.tokens for u in current) + unit.tokens > max_tokens:
                flush(carry=True)
            current.append(unit)
            fresh += 1
    flush(carry=False)
    while headings:
        heading_pop()
    return passages
