from django.urls import path

from apps.tickets.api import (
    CsatSummaryApi,
    SlaReportApi,
    SlaReportNoSlashApi,
    TicketDetailApi,
    TicketFromConversationApi,
    TicketListCreateApi,
    TicketMergeApi,
)

urlpatterns = [
    path("tickets/", TicketListCreateApi.as_view(), name="ticket-list"),
    path("tickets/from-conversation/", TicketFromConversationApi.as_view(), name="ticket-from-conversation"),
    path("tickets/csat/", CsatSummaryApi.as_view(), name="ticket-csat-summary"),
    path("tickets/<int:ticket_id>/", TicketDetailApi.as_view(), name="ticket-detail"),
    path("tickets/<int:ticket_id>/merge/", TicketMergeApi.as_view(), name="ticket-merge"),
    path("reports/sla/", SlaReportApi.as_view(), name="report-sla"),
    path("reports/sla", SlaReportNoSlashApi.as_view(), name="report-sla-no-slash"),
]
