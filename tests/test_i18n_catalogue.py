"""Strings with typographic quotes are translated: their msgids match the source text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.utils.translation import gettext, override

ROOT = Path(__file__).resolve().parent.parent
# xgettext keeps a Python "\\u201c" escape as backslash-u in the msgid, so a string written with
# escapes never matches its translation at run time: write the characters themselves.
_ESCAPED_IN_GETTEXT = re.compile(r"""\b(?:_|gettext|gettext_lazy|ngettext|pgettext)\(\s*["'][^"']*\\u[0-9a-fA-F]{4}""")


def test_no_translatable_string_uses_unicode_escapes() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "apps").rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if _ESCAPED_IN_GETTEXT.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("fr", "Imported “%(name)s” as a draft.", "« %(name)s » importé comme brouillon."),
        ("fr", "Go to “yes” when", "Aller vers « oui » quand"),
        ("sw", "Imported “%(name)s” as a draft.", "“%(name)s” imeingizwa kama rasimu."),
        (
            "fr",
            "“%(name)s” is a marketing template: a customer who opted out (sent STOP) does not get it, "
            "and the flow goes on without it.",
            "« %(name)s » est un modèle marketing : un client qui a refusé les messages marketing "
            "(il a envoyé STOP) ne le reçoit pas, et le flux continue sans lui.",
        ),
    ],
)
def test_strings_with_typographic_quotes_are_translated(language: str, text: str, expected: str) -> None:
    with override(language):
        assert gettext(text) == expected
