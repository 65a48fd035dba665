from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from apps.core.exceptions import ApplicationError
from apps.core.tenancy import tenant_context
from apps.knowledge.models import IndexStatus
from apps.knowledge.services import ImportStep, documents_import
from apps.tenants.models import Organization


class Command(BaseCommand):
    help = (
        "Import documents into a tenant's knowledge base: a file, a folder or a zip (PDF, DOCX, XLSX, TXT, CSV, "
        "Markdown, HTML). A CSV with question/answer columns becomes one passage per pair. "
        "A file's first folder becomes its category. The same import as the API's /api/v1/knowledge/import/."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--tenant", required=True, help="The organization's slug or schema name.")
        parser.add_argument("--queue", action="store_true", help="Queue indexing on Celery instead of indexing here.")
        parser.add_argument("--unpublished", action="store_true", help="Import as unpublished documents.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        tenant = Organization.objects.filter(
            Q(slug=options["tenant"]) | Q(schema_name=options["tenant"]), is_template=False
        ).first()
        if tenant is None:
            raise CommandError(f"Unknown tenant {options['tenant']!r}")
        started = time.perf_counter()
        counts = {"ready": 0, "failed": 0, "queued": 0}

        def report(step: ImportStep) -> None:
            # One progress line per file, as soon as it is done: "[3/40] billing/fees.md: ready, …".
            prefix = f"[{step.number}/{step.total}] {step.name}"
            document = step.document
            if document is None:
                counts["failed"] += 1
                message = step.refused[1] if step.refused else ""
                self.stdout.write(self.style.ERROR(f"{prefix}: {message}"))
            elif document.status == IndexStatus.READY:
                counts["ready"] += 1
                passages = document.chunks_embedded + document.chunks_reused
                self.stdout.write(f"{prefix}: ready, {passages} passages ({document.get_kind_display()})")
            elif document.status == IndexStatus.FAILED:
                counts["failed"] += 1
                self.stdout.write(self.style.ERROR(f"{prefix}: failed: {document.error_message}"))
            else:
                counts["queued"] += 1
                self.stdout.write(f"{prefix}: queued")

        with tenant_context(tenant):
            try:
                outcome = documents_import(
                    path=path,
                    published=not options["unpublished"],
                    index="queue" if options["queue"] else "now",
                    on_step=report,
                )
            except ApplicationError as exc:
                raise CommandError(f"{exc.message} [{exc.code}]") from exc
        elapsed = time.perf_counter() - started
        total = len(outcome.documents) + len(outcome.refused)
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {total} files into {tenant.schema_name} in {elapsed:.1f}s: "
                f"{counts['ready']} ready, {counts['queued']} queued, {counts['failed']} failed"
            )
        )
