from __future__ import annotations

from django.urls import path

from apps.conversations.consumers import InboxConsumer
from apps.tickets.consumers import TicketQueueConsumer

websocket_urlpatterns = [
    # Both sockets apply the conversations' visibility rule to what they forward (a Knowledge
    # Editor's socket never carries conversation previews); /ws/events/ is the older name.
    path("ws/events/", InboxConsumer.as_asgi()),
    path("ws/inbox/", InboxConsumer.as_asgi()),
    # The ticket queue's socket: ticket events only, under the tickets' visibility rule.
    path("ws/tickets/", TicketQueueConsumer.as_asgi()),
]
