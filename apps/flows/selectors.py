from __future__ import annotations

from datetime import datetime

from django.db.models import Max, OuterRef, QuerySet, Subquery
from django.utils.translation import gettext as _

from apps.core.exceptions import NotFoundError
from apps.flows.models import Flow, FlowRun, FlowVersion


def flow_versions_live() -> list[FlowVersion]:
    """The latest published version of each active flow (their triggers compete for a message)."""
    latest = FlowVersion.objects.filter(flow=OuterRef("flow")).order_by("-number").values("number")[:1]
    return list(FlowVersion.objects.filter(flow__is_active=True, number=Subquery(latest)).select_related("flow"))


def flow_version_latest_number(*, flow: Flow) -> int:
    return int(flow.versions.aggregate(n=Max("number"))["n"] or 0)


def flow_run_active_for_conversation(*, conversation_id: int) -> FlowRun | None:
    return (
        FlowRun.objects.select_related("version")
        .filter(conversation_id=conversation_id, status__in=FlowRun.ACTIVE)
        .first()
    )


def flow_runs_resume_due(*, now: datetime, limit: int = 500) -> list[int]:
    return list(
        FlowRun.objects.filter(status=FlowRun.Status.WAITING, wait_until__lte=now)
        .order_by("wait_until")
        .values_list("pk", flat=True)[:limit]
    )


def flow_list() -> QuerySet[Flow]:
    """Every flow with its latest published version number, for the builder's list and the API."""
    return Flow.objects.annotate(latest_version=Max("versions__number")).order_by("-priority", "id")


def flow_get(*, flow_id: int) -> Flow:
    flow = flow_list().filter(pk=flow_id).first()
    if flow is None:
        raise NotFoundError(_("No such flow."), code="flow_not_found")
    return flow


def flow_versions_list(*, flow: Flow) -> QuerySet[FlowVersion]:
    return FlowVersion.objects.filter(flow=flow).select_related("published_by").order_by("-number")
