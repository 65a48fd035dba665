"""Starter SLA policies, so a new business sees countdowns before it writes its own."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from apps.tickets.models import Priority, SLAPolicy

# (priority, first response, next response, resolution) in minutes, around the clock.
DEFAULT_TARGETS: tuple[tuple[str, int, int, int], ...] = (
    (Priority.URGENT, 15, 15, 4 * 60),
    (Priority.HIGH, 30, 30, 8 * 60),
    (Priority.MEDIUM, 60, 60, 24 * 60),
    (Priority.LOW, 4 * 60, 4 * 60, 3 * 24 * 60),
)


@transaction.atomic
def sla_policies_default_create() -> list[SLAPolicy]:
    """Create one policy per priority unless the business has any policy already."""
    if SLAPolicy.objects.exists():
        return []
    labels = dict(Priority.choices)
    return [
        SLAPolicy.objects.create(
            name=_("%(priority)s (starter)") % {"priority": labels[priority]},
            priority=priority,
            first_response_minutes=first,
            next_response_minutes=following,
            resolution_minutes=resolution,
        )
        for priority, first, following, resolution in DEFAULT_TARGETS
    ]
