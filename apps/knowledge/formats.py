"""What a file really is, from its bytes: the extension is only a tie-break between text formats."""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from pathlib import PurePath

from django.conf import settings
from django.utils.translation import gettext as _

from apps.knowledge.exceptions import DocumentCorrupt, DocumentUndecodable, DocumentZipBomb
from apps.knowledge.models import Document

Kind = Document.Kind

# Binary signatures of formats people upload by mistake; all unsupported.
_BINARY_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"\x1f\x8b",
    b"\x7fELF",
    b"MZ",
    b"\xd0\xcf\x11\xe0",  # OLE2: .doc / .xls of Office 97
    b"Rar!",
    b"7z\xbc\xaf",
    b"ID3",
    b"OggS",
    b"RIFF",
)
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.IGNORECASE | re.DOTALL)
_HTML_TAGS = re.compile(rb"<(p|div|h[1-6]|ul|ol|li|table|br|span|a)\b[^>]*>", re.IGNORECASE)
_MARKDOWN = re.compile(r"^(#{1,6}\s+\S|```|[-*+]\s+\S|\d+[.)]\s+\S|>\s)|\[[^\]]+\]\([^)]+\)|\*\*\S", re.MULTILINE)
SNIFF_BYTES = 64 * 1024


def zip_check(data: bytes) -> zipfile.ZipFile:
    """Open a zip container, refusing archives that would inflate past the configured caps."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise DocumentCorrupt(_("The file is a damaged zip archive.")) from exc
    if len(infos) > settings.KNOWLEDGE_ZIP_MAX_MEMBERS:
        raise DocumentZipBomb(_("The archive holds too many files."), extra={"members": len(infos)})
    total = sum(info.file_size for info in infos)
    if total > settings.KNOWLEDGE_ZIP_MAX_UNCOMPRESSED_BYTES:
        raise DocumentZipBomb(_("The archive would expand to more than the allowed size."), extra={"bytes": total})
    for info in infos:
        # zipfile never inflates a member past its declared file_size, so the declared
        # sizes are what a reader can be made to produce: checking them is enough.
        if info.file_size > 1024 * 1024 and info.file_size > settings.KNOWLEDGE_ZIP_MAX_RATIO * max(
            info.compress_size, 1
        ):
            raise DocumentZipBomb(
                _("The archive is compressed suspiciously well (a zip bomb?)."), extra={"member": info.filename}
            )
    return archive


def text_decode(data: bytes, *, partial: bool = False) -> str:
    """Text of these bytes: UTF-16 by its BOM, else UTF-8, else Windows-1252.

    `partial` is for a sniffed head: the sniff may cut a character (an odd byte, half a
    surrogate pair, part of a UTF-8 sequence), which is dropped rather than an error.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return codecs.getincrementaldecoder("utf-16")().decode(data, final=not partial)
        except UnicodeDecodeError as exc:
            raise DocumentUndecodable(
                _("The text is not valid UTF-16: the file may be damaged. Save it again as UTF-8."),
                extra={"position": exc.start},
            ) from exc
    try:
        return codecs.getincrementaldecoder("utf-8-sig")().decode(data, final=not partial)
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _looks_like_csv(text: str) -> bool:
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if len(lines) < 2:
        return False
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
    except csv.Error:
        return False
    try:
        widths = {len(row) for row in csv.reader(lines, dialect)}
    except csv.Error:
        return False
    return len(widths) == 1 and widths.pop() >= 2


def kind_detect(data: bytes, filename: str = "") -> str:
    """The document kind of these bytes, or Kind.UNKNOWN."""
    head = data[:8]
    if data[:1024].lstrip().startswith(b"%PDF-"):
        return Kind.PDF
    if head.startswith(b"PK\x03\x04"):
        names = set(zip_check(data).namelist())
        if "word/document.xml" in names:
            return Kind.DOCX
        if "xl/workbook.xml" in names:
            return Kind.XLSX
        return Kind.UNKNOWN
    if head.startswith(_BINARY_MAGIC):
        return Kind.UNKNOWN
    sample = data[:SNIFF_BYTES]
    if b"\x00" in sample and not sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return Kind.UNKNOWN
    if _HTML_START.match(sample) or len(_HTML_TAGS.findall(sample)) >= 3:
        return Kind.HTML
    text = text_decode(sample, partial=len(sample) < len(data))
    if sum(1 for char in text if not char.isprintable() and char not in "\r\n\t") > len(text) * 0.05:
        return Kind.UNKNOWN
    suffix = PurePath(filename).suffix.lower()
    if suffix in {".csv", ".tsv"} and _looks_like_csv(text):
        return Kind.CSV
    if suffix in {".md", ".markdown"} or _MARKDOWN.search(text):
        return Kind.MARKDOWN
    if suffix not in {".txt", ".text"} and _looks_like_csv(text):
        return Kind.CSV
    return Kind.TXT
