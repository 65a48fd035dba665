"""Tiny documents of every supported format, built in memory for the tests."""

from __future__ import annotations

import io
import zipfile


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _pdf_assemble(objects: list[bytes], header: bytes) -> bytes:
    """A PDF file of these objects (numbered from 1, the catalog first), with its xref table."""
    out = io.BytesIO()
    out.write(header)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: one Helvetica text line per string, one page per list."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for index, lines in enumerate(pages):
        content = "BT /F1 11 Tf 14 TL 50 780 Td " + " ".join(f"({_pdf_escape(line)}) Tj T*" for line in lines) + " ET"
        stream = content.encode("cp1252")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {page_ids[index] + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    return _pdf_assemble(objects, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")


def pdf_with_oversized_to_unicode() -> bytes:
    """A PDF whose font maps a code to 600 characters: pypdf refuses it (LimitReachedError)."""
    cmap = b"begincmap 1 beginbfchar <01> <" + b"0041" * 600 + b"> endbfchar endcmap"
    content = b"BT /F1 11 Tf 50 780 Td (\x01) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Resources << /Font << /F1 3 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"\nendstream",
    ]
    return _pdf_assemble(objects, b"%PDF-1.4\n")


def pdf_with_headings(pages: list[list[tuple[str, str]]]) -> bytes:
    """A PDF laid out by fpdf2, one list of (style, text) per page.

    Styles: "title" (22 pt bold), "h1" (16 pt bold), "h2" (13 pt bold), "bold" (11 pt bold,
    the body size), "p" (11 pt, wrapped over several lines when long), "small" (8 pt).
    """
    from fpdf import FPDF

    fonts = {
        "title": ("B", 22),
        "h1": ("B", 16),
        "h2": ("B", 13),
        "bold": ("B", 11),
        "p": ("", 11),
        "small": ("", 8),
    }
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    for page in pages:
        pdf.add_page()
        for style, text in page:
            weight, size = fonts[style]
            pdf.set_font("Helvetica", weight, size)
            pdf.multi_cell(0, size * 0.55, text, new_x="LMARGIN", new_y="NEXT")
            if style == "p":
                pdf.ln(3)
    return bytes(pdf.output())


def pdf_encrypted(pages: list[list[str]], password: str = "secret") -> bytes:  # noqa: S107 - a test fixture
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages))))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(items: list[tuple[str, str]]) -> bytes:
    """A DOCX from (style, text) pairs: style "h1"/"h2", "li", "p", or "table:a|b;c|d"."""
    import docx

    document = docx.Document()
    for style, text in items:
        if style.startswith("h"):
            document.add_heading(text, level=int(style[1]))
        elif style == "li":
            document.add_paragraph(text, style="List Bullet")
        elif style == "table":
            rows = [row.split("|") for row in text.split(";")]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
        else:
            document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_bomb(inflated_bytes: int) -> bytes:
    """A zip that looks like a DOCX and inflates one member to `inflated_bytes` of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        archive.writestr("word/media/padding.bin", b"\0" * inflated_bytes)
    return out.getvalue()


# A quote that never closes: the rest of the file (over csv's 128 KB field limit) is one cell.
UNCLOSED_QUOTE_CSV = (
    b"question,answer\n"
    + b"How do I pay?,Use paybill 123456.\n" * 25
    + b'Where?,"Nairobi\n'
    + b"Why?,Because.\n" * 12_000
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"


def xlsx_bytes(sheets: dict[str, list[list[object]]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def xlsx_truncated_sheet() -> bytes:
    """A workbook whose sheet XML is cut in half: it opens, and fails while its rows are read."""
    data = xlsx_bytes({"Prices": [["item", "price"], ["Jug", "900 KES"]]})
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as damaged:
        for info in source.infolist():
            body = source.read(info)
            damaged.writestr(info, body[: len(body) // 2] if info.filename == "xl/worksheets/sheet1.xml" else body)
    return out.getvalue()
