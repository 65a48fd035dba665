"""Bulk deletes in batches, so that a first sweep over years of rows never holds one long transaction."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet


def delete_in_batches(rows: QuerySet[Any], *, batch_size: int) -> int:
    """Delete every row of `rows` (and what cascades from them), `batch_size` at a time.

    Returns how many rows of the queryset's own model went; cascaded rows are not counted.
    """
    label = rows.model._meta.label
    deleted = 0
    while batch := list(rows.order_by("pk").values_list("pk", flat=True)[:batch_size]):
        deleted += rows.model._default_manager.filter(pk__in=batch).delete()[1].get(label, 0)
    return deleted
