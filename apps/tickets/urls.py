from django.urls import path

from apps.tickets.views import TicketQueuePageView, TicketQueueRowsView

urlpatterns = [
    path("tickets/", TicketQueuePageView.as_view(), name="ticket-queue"),
    path("tickets/rows/", TicketQueueRowsView.as_view(), name="ticket-queue-rows"),
]
