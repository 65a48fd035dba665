from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from apps.core.tenancy import tenant_context
from apps.knowledge.evaluation import corpus_load, jsonl_read, qrels_read, retrieval_evaluate
from apps.tenants.models import Organization
from apps.tenants.services import organization_create


class Command(BaseCommand):
    help = (
        "Evaluate knowledge search on a BEIR-style set: --corpus (jsonl: _id, title, text), --queries "
        "(jsonl: _id, text), --qrels (tsv: query-id, corpus-id, score). Loads the corpus into a throw-away "
        "tenant (dropped afterwards) or into --tenant, and prints MRR@10, recall@1/5/10 and the share of "
        "questions answered (confidence over KNOWLEDGE_ANSWER_MIN_CONFIDENCE)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--corpus", type=Path, required=True)
        parser.add_argument("--queries", type=Path, required=True)
        parser.add_argument("--qrels", type=Path, required=True)
        parser.add_argument("--tenant", help="Load into this tenant (slug or schema) and keep the articles.")

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("corpus", "queries", "qrels"):
            if not options[name].is_file():
                raise CommandError(f"--{name} {options[name]} is not a file")
        corpus, queries = jsonl_read(options["corpus"]), jsonl_read(options["queries"])
        qrels = qrels_read(options["qrels"])
        throwaway = not options["tenant"]
        if throwaway:
            slug = f"kb-eval-{uuid.uuid4().hex[:8]}"
            tenant = organization_create(slug=slug, name=slug, domain=f"{slug}.localhost").organization
        else:
            found = Organization.objects.filter(
                Q(slug=options["tenant"]) | Q(schema_name=options["tenant"]), is_template=False
            ).first()
            if found is None:
                raise CommandError(f"Unknown tenant {options['tenant']!r}")
            tenant = found
        try:
            with tenant_context(tenant):
                started = time.perf_counter()

                def progress(number: int) -> None:
                    if number % 100 == 0:
                        self.stdout.write(f"indexed {number}/{len(corpus)}")

                sources = corpus_load(corpus, progress=progress)
                self.stdout.write(f"indexed {len(sources)} sources in {time.perf_counter() - started:.1f}s")
                started = time.perf_counter()
                report = retrieval_evaluate(queries=queries, qrels=qrels, sources=sources)
                elapsed = time.perf_counter() - started
        finally:
            if throwaway:
                tenant.delete(force_drop=True)  # type: ignore[no-untyped-call]
        self.stdout.write(
            f"{report.queries} judged queries in {elapsed:.1f}s\n"
            f"MRR@10     {report.mrr_at_10:.3f}\n"
            f"recall@1   {report.recall_at_1:.3f}\n"
            f"recall@5   {report.recall_at_5:.3f}\n"
            f"recall@10  {report.recall_at_10:.3f}\n"
            f"answered   {report.answered:.3f} (correct source {report.answered_correct:.3f}), "
            f"not found {1 - report.answered:.3f}"
        )
