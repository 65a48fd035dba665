from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(acks_late=True)
def flow_run_resume_task(run_id: int, token: int) -> bool:
    """A Delay's end, enqueued with a countdown when the run started waiting."""
    from apps.flows.services import flow_run_resume

    return flow_run_resume(run_id=run_id, token=token)


@shared_task
def flow_runs_resume_due_sweep_task() -> int:
    from apps.flows.services import flow_runs_resume_due_sweep

    return flow_runs_resume_due_sweep()


@shared_task
def flow_runs_prune_task() -> int:
    """Daily, per tenant: ended runs older than FLOW_RUN_RETENTION_DAYS go, with their steps."""
    from apps.flows.services import flow_runs_prune

    return flow_runs_prune(older_than_days=settings.FLOW_RUN_RETENTION_DAYS)
