from __future__ import annotations

from django.urls import path

from apps.accounts.consumers import EventsConsumer
from apps.conversations.consumers import InboxConsumer

websocket_urlpatterns = [
    path("ws/events/", EventsConsumer.as_asgi()),
    path("ws/inbox/", InboxConsumer.as_asgi()),
]
