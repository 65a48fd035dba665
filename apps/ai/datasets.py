"""Readers for the public evaluation formats: Banking77, CLINC150, AfriSenti, NTREX.

Nothing here knows where the files live: the `ai_eval` command and the training script
take paths.
"""

from __future__ import annotations

import csv
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


def ntrex_read(path: Path) -> list[LabelledText]:
    """Read a `lang<TAB>text` file as (text, lang) pairs."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = [row for row in reader if len(row) >= 2]
    if rows and rows[0][0] == "lang":
        rows = rows[1:]
    return [(row[1], row[0]) for row in rows]
