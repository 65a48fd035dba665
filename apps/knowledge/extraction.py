"""Text out of a document, as a list of structural blocks (headings, paragraphs, list items, rows)."""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, Literal

from django.utils.translation import gettext as _

from apps.core.text import storable_text
from apps.knowledge.exceptions import DocumentCorrupt, DocumentEmpty, DocumentEncrypted, DocumentUnsupported
from apps.knowledge.formats import Kind, text_decode, zip_check

if TYPE_CHECKING:
    from pypdf import PageObject

BlockKind = Literal["heading", "paragraph", "item", "row", "qa"]


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    text: str
    level: int = 0  # heading level, 1 = top
    page: int | None = None


_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n")


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _paragraphs(text: str, page: int | None = None) -> list[Block]:
    blocks = []
    for part in _BLANK_LINES.split(text.replace("\r\n", "\n")):
        cleaned = _clean(part.replace("\n", " "))
        if cleaned:
            blocks.append(Block("paragraph", cleaned, page=page))
    return blocks


# --- PDF ----------------------------------------------------------------------------------


@dataclass
class _PdfLine:
    page: int
    sizes: dict[float, int]  # effective font size → characters set in it
    bold_chars: int = 0
    text: str = ""

    @property
    def size(self) -> float:
        return max(self.sizes, key=lambda size: self.sizes[size]) if self.sizes else 0.0

    @property
    def bold(self) -> bool:
        letters = sum(1 for char in self.text if not char.isspace())
        return letters > 0 and self.bold_chars >= letters


_HEADING_MAX_CHARS = 120
_HEADING_MAX_WORDS = 16
_BOLD_HEADING_MAX_WORDS = 10
_HEADING_SIZE_RATIO = 1.15  # a heading's font is at least this much larger than the body's
_MAX_HEADING_LEVELS = 3


def _pdf_font_scale(cm: list[float], tm: list[float]) -> float:
    # Vertical scale of the text matrix times the current transformation matrix: a font set
    # at 10 pt and scaled by 2 prints as 20 pt.
    c = tm[2] * cm[0] + tm[3] * cm[2]
    d = tm[2] * cm[1] + tm[3] * cm[3]
    return math.hypot(c, d) or 1.0


def _pdf_page_lines(page: PageObject, number: int) -> list[_PdfLine]:
    """A page's text lines, with the font size and boldness of their characters."""
    lines = [_PdfLine(number, {})]

    def visit(text: str, cm: list[float], tm: list[float], font: dict[str, Any] | None, size: float) -> None:
        base_font = str((font or {}).get("/BaseFont", "")).lower()
        bold = any(weight in base_font for weight in ("bold", "black", "heavy"))
        effective = round(float(size or 0) * _pdf_font_scale(cm, tm) * 2) / 2
        for index, piece in enumerate(text.split("\n")):
            if index:
                lines.append(_PdfLine(number, {}))
            line = lines[-1]
            letters = sum(1 for char in piece if not char.isspace())
            if letters and effective > 0:
                line.sizes[effective] = line.sizes.get(effective, 0) + letters
            if bold:
                line.bold_chars += letters
            line.text += piece

    page.extract_text(visitor_text=visit)
    return lines


def _pdf_heading_levels(lines: list[_PdfLine]) -> dict[int, int]:
    """Which lines are headings (index → level): set larger than the body text, or bold and short.

    The body size is the size most characters are set in. Distinct larger sizes are levels
    1, 2, 3 from the largest; a short line wholly in bold at body size is the level below them.
    """
    chars_by_size: dict[float, int] = {}
    for line in lines:
        for size, count in line.sizes.items():
            chars_by_size[size] = chars_by_size.get(size, 0) + count
    if not chars_by_size:
        return {}
    body = max(chars_by_size, key=lambda size: chars_by_size[size])
    # In a document set mostly in bold, bold says nothing: only size marks its headings.
    bold_marks = 2 * sum(line.bold_chars for line in lines) < sum(chars_by_size.values())
    candidates: dict[int, float] = {}
    for index, line in enumerate(lines):
        text = _clean(line.text)
        words = len(text.split())
        if not text or len(text) > _HEADING_MAX_CHARS or words > _HEADING_MAX_WORDS or text[-1] in ".,;":
            continue
        if not any(char.isalpha() for char in text):
            continue  # page numbers, figures
        if line.size >= body * _HEADING_SIZE_RATIO:
            candidates[index] = line.size
        elif bold_marks and line.bold and line.size >= body and words <= _BOLD_HEADING_MAX_WORDS and text[-1] != ":":
            candidates[index] = body
    larger = sorted({size for size in candidates.values() if size > body}, reverse=True)[:_MAX_HEADING_LEVELS]
    levels = {}
    for index, size in candidates.items():
        if size > body:
            levels[index] = next((level for level, s in enumerate(larger, start=1) if size >= s), len(larger) + 1)
        else:
            levels[index] = len(larger) + 1
    return levels


# What a damaged or hostile PDF makes pypdf raise besides its own errors (PyPdfError, which
# LimitReachedError and ParseError derive from without being PdfReadError).
_PDF_DAMAGE = (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, OverflowError, zlib.error)


def _pdf(data: bytes) -> list[Block]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentEncrypted(_("The PDF is protected by a password. Upload an unprotected copy."))
        lines = [line for number, page in enumerate(reader.pages, start=1) for line in _pdf_page_lines(page, number)]
    except FileNotDecryptedError as exc:
        raise DocumentEncrypted(_("The PDF is protected by a password. Upload an unprotected copy.")) from exc
    except (PyPdfError, *_PDF_DAMAGE) as exc:
        raise DocumentCorrupt(_("The PDF is damaged and could not be read."), extra={"detail": str(exc)[:200]}) from exc
    levels = _pdf_heading_levels(lines)
    blocks: list[Block] = []
    body: list[str] = []
    body_page: int | None = None

    def flush() -> None:
        if body:
            blocks.extend(_paragraphs("\n".join(body), page=body_page))
            body.clear()

    for index, line in enumerate(lines):
        level = levels.get(index)
        if level is None:
            if body_page != line.page:
                flush()
                body_page = line.page
            body.append(line.text)
            continue
        flush()
        text = _clean(line.text)
        previous = blocks[-1] if blocks else None
        if (
            previous
            and previous.kind == "heading"
            and previous.level == level
            and previous.page == line.page
            and levels.get(index - 1) == level
        ):
            # A heading wrapped over two lines is one heading.
            blocks[-1] = Block("heading", f"{previous.text} {text}", level=level, page=line.page)
        else:
            blocks.append(Block("heading", text, level=level, page=line.page))
    flush()
    return blocks


# --- DOCX ---------------------------------------------------------------------------------

_HEADING_STYLE = re.compile(r"^(Heading|Titre|Título|Überschrift)\s*(\d)", re.IGNORECASE)


def _docx(data: bytes) -> list[Block]:
    import docx
    from docx.table import Table

    zip_check(data)
    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[Block] = []
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                for row in item.rows:
                    cells = [_clean(cell.text) for cell in row.cells]
                    # Merged cells repeat their text in every grid cell they span.
                    unique = [c for i, c in enumerate(cells) if c and (i == 0 or c != cells[i - 1])]
                    if unique:
                        blocks.append(Block("row", " | ".join(unique)))
                continue
            text = _clean(item.text)
            if not text:
                continue
            style = item.style.name if item.style is not None and item.style.name else ""
            heading = _HEADING_STYLE.match(style)
            if style == "Title":
                blocks.append(Block("heading", text, level=1))
            elif heading:
                blocks.append(Block("heading", text, level=int(heading.group(2))))
            elif style.startswith("List") or (item._p.pPr is not None and item._p.pPr.numPr is not None):
                blocks.append(Block("item", text))
            else:
                blocks.append(Block("paragraph", text))
    except (KeyError, ValueError, AttributeError) as exc:
        raise DocumentCorrupt(_("The Word document is damaged and could not be read.")) from exc
    except Exception as exc:  # lxml's XMLSyntaxError and docx's own errors share no base class
        if type(exc).__module__.startswith(("lxml", "docx")):
            raise DocumentCorrupt(_("The Word document is damaged and could not be read.")) from exc
        raise
    return blocks


# --- Markdown -----------------------------------------------------------------------------


def _markdown(data: bytes) -> list[Block]:
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark").enable("table")
    tokens = parser.parse(text_decode(data))
    blocks: list[Block] = []
    list_depth = 0
    heading_level = 0
    row: list[str] = []
    in_cell = False
    for token in tokens:
        if token.type in {"bullet_list_open", "ordered_list_open"}:
            list_depth += 1
        elif token.type in {"bullet_list_close", "ordered_list_close"}:
            list_depth -= 1
        elif token.type == "heading_open":
            heading_level = int(token.tag[1])
        elif token.type == "heading_close":
            heading_level = 0
        elif token.type in {"th_open", "td_open"}:
            in_cell = True
        elif token.type in {"th_close", "td_close"}:
            in_cell = False
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and any(row):
            blocks.append(Block("row", " | ".join(cell for cell in row if cell)))
        elif token.type in {"fence", "code_block"}:
            if token.content.strip():
                blocks.append(Block("paragraph", token.content.strip()))
        elif token.type == "inline":
            text = _clean(token.content.replace("\n", " "))
            if in_cell:
                row.append(text)
            elif not text:
                continue
            elif heading_level:
                blocks.append(Block("heading", text, level=heading_level))
            elif list_depth:
                blocks.append(Block("item", text))
            else:
                blocks.append(Block("paragraph", text))
    return blocks


# --- HTML ---------------------------------------------------------------------------------


class _HtmlBlocks(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "head", "svg", "nav", "footer"}
    HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
    BLOCKS = {"p", "div", "section", "article", "blockquote", "pre", "dd", "dt", "main", "header", "body"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.text: list[str] = []
        self.kind: tuple[str, int] = ("paragraph", 0)
        self.skipping = 0
        self.cells: list[str] | None = None

    def _flush(self) -> None:
        text = _clean(" ".join(self.text))
        self.text = []
        if not text:
            return
        if self.cells is not None:
            self.cells.append(text)
            return
        kind, level = self.kind
        block_kind: BlockKind = "heading" if kind == "heading" else "item" if kind == "item" else "paragraph"
        self.blocks.append(Block(block_kind, text, level=level))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.HEADINGS:
            self._flush()
            self.kind = ("heading", self.HEADINGS[tag])
        elif tag == "li":
            self._flush()
            self.kind = ("item", 0)
        elif tag == "tr":
            self._flush()
            self.cells = []
        elif tag in {"td", "th"} or tag in self.BLOCKS or tag == "br":
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.HEADINGS or tag == "li":
            self._flush()
            self.kind = ("paragraph", 0)
        elif tag in {"td", "th"}:
            self._flush()
        elif tag == "tr":
            self._flush()
            if self.cells:
                self.blocks.append(Block("row", " | ".join(self.cells)))
            self.cells = None
        elif tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.text.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def _html(data: bytes) -> list[Block]:
    parser = _HtmlBlocks()
    parser.feed(text_decode(data))
    parser.close()
    return parser.blocks


# --- CSV and text -------------------------------------------------------------------------

QUESTION_COLUMNS = {"question", "questions", "q", "query", "swali", "maswali", "pergunta", "pregunta", "faq"}
ANSWER_COLUMNS = {"answer", "answers", "a", "response", "reply", "jibu", "majibu", "resposta", "réponse", "reponse"}


def _csv(data: bytes) -> list[Block]:
    text = text_decode(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [[_clean(cell) for cell in row] for row in csv.reader(io.StringIO(text), dialect)]
    except csv.Error as exc:
        # Typically a quote that never closes: the rest of the file becomes one cell, over the field limit.
        raise DocumentCorrupt(
            _("The CSV file could not be read (a quote that is never closed?)."), extra={"detail": str(exc)[:200]}
        ) from exc
    return _table_blocks(rows)


MAX_SHEET_ROWS = 20_000


# A damaged workbook fails while its sheets are read (read-only mode parses them lazily), too:
# a truncated sheet is an XML ParseError, which is a SyntaxError (lxml's as well).
_XLSX_DAMAGE = (KeyError, ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile, SyntaxError)


def _xlsx(data: bytes) -> list[Block]:
    from openpyxl import load_workbook

    zip_check(data)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except _XLSX_DAMAGE as exc:
        raise DocumentCorrupt(_("The spreadsheet is damaged and could not be read.")) from exc
    blocks: list[Block] = []
    try:
        for sheet in workbook.worksheets:
            rows: list[list[str]] = []
            for row in sheet.iter_rows(values_only=True, max_row=MAX_SHEET_ROWS):
                rows.append([_clean(str(cell)) if cell is not None else "" for cell in row])
            sheet_blocks = _table_blocks(rows)
            if sheet_blocks and len(workbook.worksheets) > 1:
                blocks.append(Block("heading", sheet.title, level=1))
            blocks.extend(sheet_blocks)
    except _XLSX_DAMAGE as exc:
        raise DocumentCorrupt(_("The spreadsheet is damaged and could not be read.")) from exc
    finally:
        workbook.close()
    return blocks


def _table_blocks(rows: list[list[str]]) -> list[Block]:
    """Rows with a header: question/answer pairs when it has those columns, else 'column: value' rows."""
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    header = [cell.lower() for cell in rows[0]]
    question = next((i for i, name in enumerate(header) if name in QUESTION_COLUMNS), None)
    answer = next((i for i, name in enumerate(header) if name in ANSWER_COLUMNS), None)
    blocks: list[Block] = []
    if question is not None and answer is not None:
        for row in rows[1:]:
            q = row[question] if question < len(row) else ""
            a = row[answer] if answer < len(row) else ""
            if q and a:
                blocks.append(Block("qa", f"Q: {q}\nA: {a}"))
        return blocks
    for row in rows[1:]:
        pairs = [f"{rows[0][i]}: {cell}" for i, cell in enumerate(row) if cell and i < len(rows[0])]
        if pairs:
            blocks.append(Block("row", "; ".join(pairs)))
    return blocks


def _txt(data: bytes) -> list[Block]:
    return _paragraphs(text_decode(data))


_READERS: dict[str, Callable[[bytes], list[Block]]] = {
    Kind.PDF: _pdf,
    Kind.DOCX: _docx,
    Kind.MARKDOWN: _markdown,
    Kind.HTML: _html,
    Kind.CSV: _csv,
    Kind.TXT: _txt,
    Kind.XLSX: _xlsx,
}


def blocks_extract(data: bytes, kind: str) -> list[Block]:
    """The blocks of a document of this kind; raises a DocumentError when there are none to index."""
    reader = _READERS.get(kind)
    if reader is None:
        raise DocumentUnsupported(
            _("This file type is not supported. Upload PDF, DOCX, XLSX, TXT, CSV, Markdown or HTML."),
            extra={"kind": kind},
        )
    blocks = [replace(block, text=storable_text(block.text)) for block in reader(data)]
    if not any(block.text.strip() for block in blocks):
        raise DocumentEmpty(_("No text was found in this document (a scanned PDF needs OCR first)."))
    return blocks
