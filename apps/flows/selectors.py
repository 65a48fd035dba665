from __future__ import annotations

from datetime import datetime

from django.db.models import Max, OuterRef, Subquery

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
