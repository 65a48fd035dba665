"""Cache invalidation only: a changed or new number is routed with its new settings at once."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.tenants.models import WhatsAppAccount
from apps.whatsapp.webhooks import routes_forget


@receiver(post_save, sender=WhatsAppAccount)
@receiver(post_delete, sender=WhatsAppAccount)
def whatsapp_routes_forget(**_kwargs: Any) -> None:
    # Other processes catch up within webhooks.ROUTE_TTL seconds.
    routes_forget()
