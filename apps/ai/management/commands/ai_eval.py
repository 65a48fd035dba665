"""Measure the offline analysers on public data files.

manage.py ai_eval intents --train banking77_train.csv --test banking77_test.csv [--shots 10]
manage.py ai_eval intents --train clinc150.json [--shots K]
manage.py ai_eval sentiment --data afrisenti_sw_dev.tsv afrisenti_ha_dev.tsv ...
manage.py ai_eval language --data ntrex_dev.tsv
"""

from __future__ import annotations

import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.ai import evaluation
from apps.ai.datasets import clinc_read, intents_read
from apps.ai.embeddings import embed_queries


class Command(BaseCommand):
    help = "Evaluate intent, sentiment or language analysis on public data files."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="task", required=True)
        intents = sub.add_parser("intents", help="Banking77 CSV (text,category) or CLINC150 JSON")
        intents.add_argument("--train", type=Path, required=True)
        intents.add_argument("--test", type=Path, help="not needed for CLINC150 JSON")
        intents.add_argument("--shots", type=int, help="examples per intent (default: all)")
        sentiment = sub.add_parser("sentiment", help="AfriSenti TSV files; the language is in the file name")
        sentiment.add_argument("--data", type=Path, nargs="+", required=True)
        language = sub.add_parser("language", help="NTREX-style lang<TAB>text file, or AfriSenti TSV files")
        language.add_argument("--data", type=Path, nargs="+", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        task = options["task"]
        if task == "intents":
            self._intents(options["train"], options["test"], options["shots"])
        elif task == "sentiment":
            scores = evaluation.sentiment_evaluate(options["data"])
            for code, score in scores.items():
                self.stdout.write(f"{code:8} weighted F1 {score:.4f}")
        else:
            for path in options["data"]:
                for code, score in evaluation.language_evaluate(path).items():
                    self.stdout.write(f"{path.name}: {code:6} accuracy {score:.4f}")
        self.stdout.write(f"({time.perf_counter() - started:.0f} s)")

    def _intents(self, train: Path, test: Path | None, shots: int | None) -> None:
        if train.suffix == ".json":
            splits = clinc_read(train)
            if "train" in splits and "val" in splits:
                report = evaluation.clinc_evaluate(splits, shots=shots, embed=embed_queries)
                self.stdout.write(
                    f"in-scope accuracy {report.in_scope_accuracy:.4f}  oos recall {report.oos_recall:.4f}  "
                    f"threshold {report.threshold:.3f}  ({report.note}; {report.threshold_rows} tuning rows, "
                    f"{report.test_rows} reported rows)"
                )
                return
        if test is None:
            raise CommandError("--test is required unless --train is a CLINC150 JSON with train and val splits")
        result = evaluation.intents_evaluate(intents_read(train), intents_read(test), shots=shots, embed=embed_queries)
        self.stdout.write(
            f"accuracy {result.accuracy:.4f}  ({result.intents} intents, {result.train_rows} train rows, "
            f"{result.test_rows} test rows)"
        )
