"""Readers for the public evaluation formats: Banking77, CLINC150, AfriSenti, Sentiment140, VADER, NTREX.

Nothing here knows where the files live: the `ai_eval` command and the training script
take paths.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

LabelledText = tuple[str, str]  # (text, label)

_AFRISENTI_NAME = re.compile(r"(?:^|[_/])([a-z]{2,3})_(?:train|dev|test)\b")


def banking77_read(path: Path) -> list[LabelledText]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [(row["text"], row["category"]) for row in csv.DictReader(handle)]


def clinc_read(path: Path) -> dict[str, list[LabelledText]]:
    """Return CLINC150's splits (train, val, test, oos_train, oos_val, oos_test) that are present."""
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    return {split: [(str(text), str(label)) for text, label in rows] for split, rows in data.items()}


def intents_read(path: Path) -> list[LabelledText]:
    """Read a `text,category` CSV (Banking77 style) or a JSON list of [text, intent] pairs."""
    if path.suffix == ".json":
        with path.open(encoding="utf-8") as handle:
            return [(str(text), str(label)) for text, label in json.load(handle)]
    return banking77_read(path)


def afrisenti_read(path: Path) -> list[LabelledText]:
    """Read an AfriSenti TSV (`ID, tweet, label`); tweets hold quotes, so quoting is off."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            return []
        text_col, label_col = header.index("tweet"), header.index("label")
        return [(row[text_col], row[label_col]) for row in reader if len(row) > label_col]


def afrisenti_language(path: Path) -> str:
    """Return the language code in an AfriSenti file name (`afrisenti_sw_dev.tsv`, `ha_train.tsv`)."""
    match = _AFRISENTI_NAME.search(path.name)
    if match is None:
        raise ValueError(f"no language code in file name {path.name!r}")
    return match.group(1)


SENTIMENT140_LABELS = {"0": "negative", "2": "neutral", "4": "positive"}


def _decode(raw: bytes) -> str:
    """UTF-8, or Latin-1 (how Sentiment140 was published) when not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _csv_rows(raw: bytes) -> list[list[str]]:
    return list(csv.reader(_decode(raw).splitlines()))


def is_sentiment140(path: Path) -> bool:
    """A Sentiment140 CSV: no header, six columns, the first a polarity of 0, 2 or 4 (only line 1 is read)."""
    if path.suffix.lower() != ".csv":
        return False
    with path.open("rb") as handle:
        rows = _csv_rows(handle.readline())
    return bool(rows) and len(rows[0]) == 6 and rows[0][0].strip() in SENTIMENT140_LABELS


def sentiment140_read(path: Path) -> list[LabelledText]:
    """Read a Sentiment140 CSV (`polarity, id, date, query, user, text`; polarity 0, 2 or 4)."""
    rows = []
    for number, row in enumerate(_csv_rows(path.read_bytes()), start=1):
        if not row:
            continue
        if len(row) != 6 or row[0].strip() not in SENTIMENT140_LABELS:
            raise ValueError(f"{path.name}, line {number}: not a Sentiment140 row (polarity 0/2/4 and 6 columns)")
        rows.append((row[5], SENTIMENT140_LABELS[row[0].strip()]))
    return rows


# VADER's ground truth (Hutto & Gilbert 2014, shipped in the vaderSentiment sdist): English
# tweets and review/editorial snippets with the mean of ~20 human ratings from -4 to +4.
VADER_NEUTRAL_BAND = 0.5  # a mean rating within ±0.5 is neutral
_VADER_ROW = re.compile(r"^\S+\t-?\d+(?:\.\d+)?\t")


def is_vader(path: Path) -> bool:
    """A VADER ground-truth file: `id<TAB>mean rating<TAB>text` lines (only line 1 is read)."""
    with path.open("rb") as handle:
        first = handle.readline().decode("latin-1")
    return bool(_VADER_ROW.match(first))


def vader_label(rating: float) -> str:
    if rating >= VADER_NEUTRAL_BAND:
        return "positive"
    return "negative" if rating <= -VADER_NEUTRAL_BAND else "neutral"


def vader_dev(text: str) -> bool:
    """The fixed ~30 % of VADER rows kept for measuring: the training script never reads them."""
    return hashlib.sha256(text.encode()).digest()[1] < 77


def vader_read(path: Path) -> list[LabelledText]:
    """Read a VADER ground-truth file (UTF-8, or Latin-1) as (text, label) by `vader_label`."""
    rows = []
    for number, line in enumerate(_decode(path.read_bytes()).splitlines(), start=1):
        if not line.strip():
            continue
        if not _VADER_ROW.match(line):
            raise ValueError(f"{path.name}, line {number}: not a VADER row (id, mean rating, text, tab-separated)")
        _, rating, text = line.split("\t", 2)
        rows.append((text, vader_label(float(rating))))
    return rows


def ntrex_read(path: Path) -> list[LabelledText]:
    """Read a `lang<TAB>text` file as (text, lang) pairs."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = [row for row in reader if len(row) >= 2]
    if rows and rows[0][0] == "lang":
        rows = rows[1:]
    return [(row[1], row[0]) for row in rows]
