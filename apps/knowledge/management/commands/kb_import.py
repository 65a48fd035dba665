from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from apps.core.exceptions import ApplicationError
from apps.core.tenancy import tenant_context
from apps.knowledge.imports import import_items
from apps.knowledge.indexing import document_index
from apps.knowledge.models import IndexStatus
from apps.knowledge.services import category_get_or_create, document_create
from apps.tenants.models import Organization


class Command(BaseCommand):
    help = (
        "Import documents into a tenant's knowledge base: a file, a folder or a zip (PDF, DOCX, XLSX, TXT, CSV, "
        "Markdown, HTML). A CSV with question/answer columns becomes one passage per pair. "
        "A file's first folder becomes its category."
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
        with tenant_context(tenant):
            try:
                items = list(import_items(path))
            except ApplicationError as exc:
                raise CommandError(f"{exc.message} [{exc.code}]") from exc
            total = len(items)
            for number, item in enumerate(items, start=1):
                prefix = f"[{number}/{total}] {item.name}"
                try:
                    document = document_create(
                        upload=io.BytesIO(item.data),
                        filename=item.name,
                        category=category_get_or_create(name=item.folder) if item.folder else None,
                        published=not options["unpublished"],
                        queue_index=options["queue"],
                    )
                except ApplicationError as exc:
                    counts["failed"] += 1
                    self.stdout.write(self.style.ERROR(f"{prefix}: {exc.message}"))
                    continue
                if document.status == IndexStatus.UPLOADED and options["queue"]:
                    counts["queued"] += 1
                    self.stdout.write(f"{prefix}: queued")
                    continue
                if document.status == IndexStatus.UPLOADED:
                    document = document_index(document_id=document.pk) or document
                if document.status == IndexStatus.READY:
                    counts["ready"] += 1
                    passages = document.chunks_embedded + document.chunks_reused
                    self.stdout.write(f"{prefix}: ready, {passages} passages ({document.get_kind_display()})")
                else:
                    counts["failed"] += 1
                    self.stdout.write(self.style.ERROR(f"{prefix}: failed: {document.error_message}"))
        elapsed = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {total} files into {tenant.schema_name} in {elapsed:.1f}s: "
                f"{counts['ready']} ready, {counts['queued']} queued, {counts['failed']} failed"
            )
        )
