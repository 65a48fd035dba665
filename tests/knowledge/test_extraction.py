"""Format detection by content, extraction of every format, structure-aware chunking (no database)."""

from __future__ import annotations

import itertools

import pytest
from django.test import override_settings

from apps.knowledge.chunking import passages_build, token_count
from apps.knowledge.exceptions import (
    DocumentCorrupt,
    DocumentEmpty,
    DocumentEncrypted,
    DocumentUndecodable,
    DocumentUnsupported,
    DocumentZipBomb,
)
from apps.knowledge.extraction import Block, blocks_extract
from apps.knowledge.formats import Kind, kind_detect
from tests.knowledge import samples

MARKDOWN = b"""# Billing

Invoices are sent on the first day of each month.

## Refunds

- Refunds take five working days.
- Refunds go back to the original M-Pesa number.

| Plan | Price |
|------|-------|
| Basic | 10 USD |
"""

HTML = b"""<!doctype html><html><head><title>t</title><style>p{}</style><script>var x=1;</script></head>
<body><nav>Home | About</nav><h1>Delivery</h1><p>We deliver in Nairobi &amp; Mombasa.</p>
<ul><li>Same day before noon</li><li>Next day otherwise</li></ul>
<table><tr><th>Zone</th><th>Fee</th></tr><tr><td>CBD</td><td>200 KES</td></tr></table></body></html>"""


def test_kinds_are_detected_from_content_not_extension() -> None:
    assert kind_detect(samples.pdf_bytes([["Hello"]]), "notes.txt") == Kind.PDF
    assert kind_detect(samples.docx_bytes([("p", "Hi")]), "report.txt") == Kind.DOCX
    assert kind_detect(samples.PNG, "manual.pdf") == Kind.UNKNOWN
    assert kind_detect(HTML, "page.txt") == Kind.HTML
    assert kind_detect(MARKDOWN, "faq.txt") == Kind.MARKDOWN
    assert kind_detect(b"question,answer\nWhat?,That.\nWhy?,Because.\n", "faq.csv") == Kind.CSV
    assert kind_detect(b"Just a plain note.\n\nSecond paragraph.", "note.bin") == Kind.TXT
    assert kind_detect(b"\x00\x01\x02binary\x00", "x.txt") == Kind.UNKNOWN


def test_pdf_pages_are_extracted_with_page_numbers() -> None:
    data = samples.pdf_bytes([["Opening hours are 8am to 5pm."], ["Closed on public holidays (Madaraka Day)."]])
    blocks = blocks_extract(data, Kind.PDF)
    assert [b.page for b in blocks] == [1, 2]
    assert "8am to 5pm" in blocks[0].text and "Madaraka Day" in blocks[1].text


LONG_PARAGRAPH = (
    "Orders placed before noon in Nairobi are delivered the same day by our riders, who call before they "
    "arrive; orders placed later leave the warehouse the next morning, and upcountry parcels travel by bus."
)


def test_pdf_headings_are_detected_from_font_size_and_bold() -> None:
    data = samples.pdf_with_headings(
        [
            [
                ("title", "Customer Handbook"),
                ("h1", "1. Delivery"),
                ("p", LONG_PARAGRAPH),
                ("h2", "Fees"),
                ("p", "Delivery costs 200 KES inside the city."),
                ("bold", "Payment by M-Pesa"),
                ("p", "Pay to till 123456 and keep the confirmation message."),
                ("small", "Prices include VAT."),
            ],
            [("h1", "2. Returns"), ("p", "Returns are accepted within 14 days with the receipt.")],
        ]
    )
    blocks = blocks_extract(data, Kind.PDF)
    headings = [(b.text, b.level, b.page) for b in blocks if b.kind == "heading"]
    assert headings == [
        ("Customer Handbook", 1, 1),
        ("1. Delivery", 2, 1),
        ("Fees", 3, 1),
        ("Payment by M-Pesa", 4, 1),
        ("2. Returns", 2, 2),
    ]
    paragraphs = [b for b in blocks if b.kind == "paragraph"]
    # A paragraph wrapped over several lines stays one paragraph; small print stays body text.
    assert paragraphs[0].text == LONG_PARAGRAPH and paragraphs[0].page == 1
    assert any("Prices include VAT." in b.text for b in paragraphs)
    assert paragraphs[-1].page == 2

    passages = passages_build(blocks, max_tokens=180, overlap_tokens=30)
    delivery = next(p for p in passages if "same day" in p.text)
    assert delivery.heading_path == "Customer Handbook > 1. Delivery" and delivery.page == 1
    fees = next(p for p in passages if "200 KES" in p.text)
    assert fees.heading_path == "Customer Handbook > 1. Delivery > Fees"
    returns = next(p for p in passages if "14 days" in p.text)
    assert returns.heading_path == "Customer Handbook > 2. Returns" and returns.page == 2


def test_pdf_in_one_font_has_no_headings() -> None:
    # Same size throughout and no bold: nothing is promoted to a heading, lines join into paragraphs.
    blocks = blocks_extract(samples.pdf_with_headings([[("p", "Short line"), ("p", LONG_PARAGRAPH)]]), Kind.PDF)
    assert {b.kind for b in blocks} == {"paragraph"}
    assert any(LONG_PARAGRAPH in b.text for b in blocks)
    # Set all in bold, bold marks nothing either (the wrapped lines of a paragraph are short and bold).
    bold = blocks_extract(samples.pdf_with_headings([[("bold", "Short line"), ("bold", LONG_PARAGRAPH)]]), Kind.PDF)
    assert {b.kind for b in bold} == {"paragraph"}


def test_pdf_heading_wrapped_over_two_lines_is_one_heading() -> None:
    title = "Terms and conditions of delivery, returns and warranty repairs for Kenya"
    data = samples.pdf_with_headings([[("title", title), ("p", LONG_PARAGRAPH), ("p", "Second paragraph here.")]])
    blocks = blocks_extract(data, Kind.PDF)
    assert blocks[0] == Block("heading", title, level=1, page=1)


def test_docx_headings_lists_and_tables() -> None:
    data = samples.docx_bytes(
        [("h1", "Returns"), ("p", "Keep the receipt."), ("li", "Unopened items only"), ("table", "Item|Days;Phone|14")]
    )
    blocks = blocks_extract(data, Kind.DOCX)
    assert Block("heading", "Returns", level=1) in blocks
    assert Block("paragraph", "Keep the receipt.") in blocks
    assert Block("item", "Unopened items only") in blocks
    assert Block("row", "Phone | 14") in blocks


def test_markdown_structure() -> None:
    blocks = blocks_extract(MARKDOWN, Kind.MARKDOWN)
    assert blocks[0] == Block("heading", "Billing", level=1)
    assert Block("heading", "Refunds", level=2) in blocks
    assert Block("item", "Refunds take five working days.") in blocks
    assert Block("row", "Basic | 10 USD") in blocks


def test_html_skips_scripts_and_navigation() -> None:
    blocks = blocks_extract(HTML, Kind.HTML)
    texts = [b.text for b in blocks]
    assert Block("heading", "Delivery", level=1) in blocks
    assert "We deliver in Nairobi & Mombasa." in texts
    assert Block("item", "Same day before noon") in blocks
    assert "CBD | 200 KES" in texts
    assert not any("var x" in t or "Home" in t for t in texts)


def test_csv_question_answer_pairs_and_plain_rows() -> None:
    qa = blocks_extract(b"Question;Answer\nHow do I pay?;Use M-Pesa paybill 123.\nOpen on Sunday?;No.\n", Kind.CSV)
    assert [b.kind for b in qa] == ["qa", "qa"]
    assert qa[0].text == "Q: How do I pay?\nA: Use M-Pesa paybill 123."
    rows = blocks_extract(b"city,fee\nNairobi,200\nKisumu,350\n", Kind.CSV)
    assert rows == [Block("row", "city: Nairobi; fee: 200"), Block("row", "city: Kisumu; fee: 350")]


def test_xlsx_sheets_rows_and_question_answer_pairs() -> None:
    data = samples.xlsx_bytes(
        {"FAQ": [["Question", "Answer"], ["Open on Sunday?", "No."]], "Fees": [["city", "fee"], ["Nairobi", 200]]}
    )
    assert kind_detect(data, "book.csv") == Kind.XLSX
    assert blocks_extract(data, Kind.XLSX) == [
        Block("heading", "FAQ", level=1),
        Block("qa", "Q: Open on Sunday?\nA: No."),
        Block("heading", "Fees", level=1),
        Block("row", "city: Nairobi; fee: 200"),
    ]


@pytest.mark.parametrize(
    ("data", "kind", "error"),
    [
        (samples.pdf_encrypted([["Secret plan"]]), Kind.PDF, DocumentEncrypted),
        (b"%PDF-1.4\n1 0 obj garbage", Kind.PDF, DocumentCorrupt),
        (samples.pdf_bytes([[]]), Kind.PDF, DocumentEmpty),
        (b"   \n\n  ", Kind.TXT, DocumentEmpty),
        (b"PK\x03\x04 not really a zip", Kind.DOCX, DocumentCorrupt),
        (samples.PNG, Kind.UNKNOWN, DocumentUnsupported),
        # pypdf's own limits (LimitReachedError is no PdfReadError): the file will never read.
        (samples.pdf_with_oversized_to_unicode(), Kind.PDF, DocumentCorrupt),
        (samples.UNCLOSED_QUOTE_CSV, Kind.CSV, DocumentCorrupt),
        (samples.xlsx_truncated_sheet(), Kind.XLSX, DocumentCorrupt),
    ],
)
def test_bad_inputs_raise_clear_errors(data: bytes, kind: str, error: type[Exception]) -> None:
    if kind == Kind.CSV:
        assert kind_detect(data, "faq.csv") == Kind.CSV  # the sniffed head looks fine
    with pytest.raises(error) as raised:
        blocks_extract(data, kind)
    assert str(raised.value)


@override_settings(KNOWLEDGE_ZIP_MAX_RATIO=50)
def test_docx_zip_bomb_is_refused_before_inflating() -> None:
    bomb = samples.docx_bomb(4 * 1024 * 1024)
    assert len(bomb) < 64 * 1024
    with pytest.raises(DocumentZipBomb):
        kind_detect(bomb, "cv.docx")
    with pytest.raises(DocumentZipBomb):
        blocks_extract(bomb, Kind.DOCX)


@override_settings(KNOWLEDGE_ZIP_MAX_UNCOMPRESSED_BYTES=1024 * 1024)
def test_docx_total_uncompressed_cap() -> None:
    with pytest.raises(DocumentZipBomb):
        kind_detect(samples.docx_bomb(2 * 1024 * 1024), "cv.docx")


def test_chunks_follow_headings_and_keep_their_path() -> None:
    blocks = blocks_extract(MARKDOWN, Kind.MARKDOWN)
    passages = passages_build(blocks, max_tokens=200, overlap_tokens=20)
    assert [p.heading_path for p in passages] == ["Billing", "Billing > Refunds"]
    assert passages[1].text.startswith("- Refunds take five working days.")
    assert passages[1].embed_text.startswith("Billing > Refunds\n")


def test_chunks_are_token_bounded_with_overlap() -> None:
    sentences = [f"Sentence number {i} talks about topic {i}." for i in range(40)]
    passages = passages_build([Block("paragraph", " ".join(sentences))], max_tokens=40, overlap_tokens=10)
    assert len(passages) > 3
    assert all(p.token_count <= 40 + 10 for p in passages)
    for previous, following in itertools.pairwise(passages):
        last_sentence = previous.text.split(". ")[-1]
        assert following.text.startswith(last_sentence.rstrip("."))  # the overlap carries the tail
    assert token_count("Hello, world!") == 4


def test_qa_rows_are_one_passage_each_and_pages_split_passages() -> None:
    qa = [Block("qa", "Q: a?\nA: b."), Block("qa", "Q: c?\nA: d.")]
    assert [p.text for p in passages_build(qa, max_tokens=100, overlap_tokens=10)] == ["Q: a?\nA: b.", "Q: c?\nA: d."]
    paged = [Block("paragraph", "one", page=1), Block("paragraph", "two", page=2)]
    assert [(p.text, p.page) for p in passages_build(paged, max_tokens=100, overlap_tokens=10)] == [
        ("one", 1),
        ("two", 2),
    ]


def test_utf16_sniff_tolerates_a_surrogate_pair_cut_at_the_sniff_limit() -> None:
    # The BOM and 32,766 two-byte characters end at byte 65,534: the emoji's four bytes
    # straddle the 64 KB sniff, which holds only its high surrogate.
    text = "a" * 32766 + "\U0001f600 Refunds take five days."
    data = "\ufeff".encode("utf-16-le") + text.encode("utf-16-le")
    assert kind_detect(data, "notes.txt") == Kind.TXT
    assert "Refunds take five days." in blocks_extract(data, Kind.TXT)[0].text


def test_undecodable_utf16_is_a_document_error() -> None:
    odd = b"\xff\xfe" + "Refunds take five days.".encode("utf-16-le") + b"!"
    for read in (lambda: kind_detect(odd, "odd.txt"), lambda: blocks_extract(odd, Kind.TXT)):
        with pytest.raises(DocumentUndecodable) as raised:
            read()
        assert raised.value.code == "document_undecodable" and str(raised.value)


def test_headings_without_body_are_passages_of_their_own() -> None:
    blocks = blocks_extract(b"# Billing\n\n## Refunds\n\n## Fees\n\nSee the price list.\n\n# Contact\n", Kind.MARKDOWN)
    passages = passages_build(blocks, max_tokens=200, overlap_tokens=20)
    # "Billing" is on the path of the passages under it; "Refunds" and "Contact" have no body.
    assert [(p.heading_path, p.text) for p in passages] == [
        ("Billing", "Refunds"),
        ("Billing > Fees", "See the price list."),
        ("", "Contact"),
    ]
    pdf = [Block("heading", "Opening hours", level=1, page=3)]
    assert [(p.text, p.page) for p in passages_build(pdf, max_tokens=200, overlap_tokens=20)] == [("Opening hours", 3)]


def test_text_without_spaces_is_cut_to_the_token_limit() -> None:
    blob = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB" * 20_000  # a data-URI image: 640 KB, no space, no sentence end
    blocks = [
        Block("heading", "Logo " + blob[:5000], level=1),
        Block("paragraph", f"![logo](data:image/png;base64,{blob})"),
        Block("qa", f"Q: What is the logo?\nA: {blob}"),
    ]
    passages = passages_build(blocks, max_tokens=180, overlap_tokens=30)
    assert len(passages) > 100
    assert all(p.token_count == token_count(p.text) <= 180 for p in passages)
    assert max(len(p.text) for p in passages) < 180 * 20
    assert sum(len(p.text) for p in passages) >= 2 * len(blob)  # nothing is lost


def test_long_text_without_sentence_ends_is_split_in_linear_time() -> None:
    import time

    started = time.perf_counter()
    passages = passages_build([Block("paragraph", "word " * 400_000)], max_tokens=180, overlap_tokens=30)
    assert time.perf_counter() - started < 10  # cutting word by word took about 30 s
    assert len(passages) >= 400_000 // 180 and all(p.token_count <= 180 for p in passages)
