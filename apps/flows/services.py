"""Publishing flows and running them for analysed inbound messages and Delay resumes."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.contacts.keywords import consent_keyword
from apps.conversations.models import Conversation, Message
from apps.core.exceptions import ApplicationError
from apps.core.queue import enqueue_on_commit
from apps.flows import engine
from apps.flows import graph as g
from apps.flows.live_ports import LivePorts
from apps.flows.models import Flow, FlowRun, FlowRunStep, FlowVersion
from apps.flows.selectors import flow_run_active_for_conversation, flow_version_latest_number, flow_versions_live
from apps.tickets.business_hours import business_seconds_between
from apps.tickets.models import BusinessCalendar
from apps.tickets.services.sla import calendar_schedule

logger = logging.getLogger(__name__)

RESUME_GRACE = timedelta(seconds=30)  # the sweep leaves on-time resumes to their ETA task


class FlowNotPublished(ApplicationError):
    code = "flow_not_published"


@transaction.atomic
def flow_publish(*, flow: Flow, by: User | None) -> FlowVersion:
    """Validate the draft and freeze it as the next version; its Trigger becomes the flow's trigger."""
    # The lock serialises two publishes of one flow, which would otherwise take the same number.
    locked = Flow.objects.select_for_update().get(pk=flow.pk)
    graph = g.graph_validate(locked.draft)
    version = FlowVersion.objects.create(
        flow=locked, number=flow_version_latest_number(flow=locked) + 1, graph=locked.draft, published_by=by
    )
    flow.trigger = locked.trigger = dict(graph.node(graph.entry).config)
    locked.save(update_fields=["trigger", "updated"])
    return version


def flow_activate(*, flow: Flow, active: bool) -> Flow:
    if active and not flow.versions.exists():
        raise FlowNotPublished("Publish the flow before activating it.")
    flow.is_active = active
    flow.save(update_fields=["is_active", "updated"])
    return flow


def _event(message: Message, conversation: Conversation) -> engine.Event:
    content = message.content or {}
    reply = content.get("reply") if isinstance(content.get("reply"), dict) else {}
    first = not conversation.messages.filter(direction=Message.Direction.INBOUND, pk__lt=message.pk).exists()
    return engine.Event(
        kind="message",
        now=timezone.now(),
        text=message.text or str((reply or {}).get("title", "")),
        choice_id=str((reply or {}).get("id", "")),
        intent=message.intent,
        sentiment=message.sentiment,
        language=message.language or conversation.language,
        tags=tuple(conversation.tags),
        first_message=first,
        referral=bool(content.get("referral")),
    )


def _automatable(message: Message, conversation: Conversation) -> bool:
    if message.direction != Message.Direction.INBOUND or conversation.status != Conversation.Status.BOT:
        return False
    return not (message.type == "text" and consent_keyword(message.text) is not None)


def _in_business_hours(now: datetime) -> bool:
    """Inside the first business calendar's hours (around the clock when there is none)."""
    calendar = BusinessCalendar.objects.prefetch_related("periods").order_by("pk").first()
    schedule = calendar_schedule(calendar)
    return business_seconds_between(schedule, now, now + timedelta(minutes=1)) > 0


def _triggered(event: engine.Event) -> FlowVersion | None:
    live = flow_versions_live()
    if any(v.flow.trigger.get("kind") == "business_hours" for v in live):
        event = replace(event, business_hours=_in_business_hours(event.now or timezone.now()))
    candidates = [v for v in live if engine.trigger_matches(v.flow.trigger, event)]
    candidates.sort(key=lambda v: engine.trigger_sort_key(v.flow.trigger, v.flow.priority, v.flow.pk))
    return candidates[0] if candidates else None


def flow_claims_message(message: Message) -> bool:
    """Whether a flow handles this message (a run is active, or a trigger matches): no side effects."""
    conversation = message.conversation
    if not _automatable(message, conversation):
        return False
    if flow_run_active_for_conversation(conversation_id=conversation.pk) is not None:
        return True
    if FlowRunStep.objects.filter(message_id=message.pk).exists():
        return True  # a retried task: the run ended on this very message
    return _triggered(_event(message, conversation)) is not None


def _state(run: FlowRun) -> engine.State:
    return engine.State(
        node_id=run.current_node or None,
        status=run.status,
        variables=dict(run.variables),
        retries=run.retries,
        wait_until=run.wait_until,
        steps_total=run.steps_total,
        error=run.error,
    )


def _advance(run: FlowRun, event: engine.Event, ports: LivePorts, message_id: int | None) -> FlowRun:
    graph = g.graph_parse(run.version.graph)
    wall = timezone.now()
    state, steps = engine.run(graph, _state(run), event, ports)
    origin = steps[0].started if steps else 0.0
    FlowRunStep.objects.bulk_create(
        FlowRunStep(
            run=run,
            node_id=s.node_id,
            node_type=s.node_type,
            branch=s.branch,
            message_id=message_id,
            started=wall + timedelta(seconds=s.started - origin),
            duration_ms=s.duration_ms,
            error=s.error[:2000],
        )
        for s in steps
    )
    run.current_node = state.node_id or ""
    run.status = state.status
    run.variables = state.variables
    run.retries = state.retries
    run.steps_total = state.steps_total
    run.error = state.error
    if ports.resume_seconds is not None and state.status == engine.WAITING:
        run.wait_until = event.now + timedelta(seconds=ports.resume_seconds) if event.now else timezone.now()
        run.resume_token += 1
        from apps.flows.tasks import flow_run_resume_task

        enqueue_on_commit(flow_run_resume_task, run.pk, run.resume_token, countdown=ports.resume_seconds)
    elif state.status != engine.WAITING:
        run.wait_until = None
    if message_id is not None:
        run.last_message_id = message_id
    run.save()
    if state.status == engine.FAILED:
        logger.warning("flow run %s failed at %s: %s", run.pk, state.node_id, state.error)
    return run


def flow_handle_message(message: Message) -> None:
    """Run the conversation's active flow, or start the best-matching one (idempotent)."""
    conversation = Conversation.objects.select_related("contact", "account").get(pk=message.conversation_id)
    if not _automatable(message, conversation):
        return
    event = _event(message, conversation)
    with transaction.atomic():
        # Lock the run only: a plain FOR UPDATE would also lock the joined version row and
        # serialise every conversation running the same flow.
        run = (
            FlowRun.objects.select_for_update(of=("self",))
            .select_related("version")
            .filter(conversation=conversation, status__in=FlowRun.ACTIVE)
            .first()
        )
        if run is not None and run.last_message_id is not None and run.last_message_id >= message.pk:
            return  # a retry of a message this run already consumed
        if run is None:
            if FlowRunStep.objects.filter(message_id=message.pk, run__conversation=conversation).exists():
                return  # this message already ran a flow to its end
            version = _triggered(event)
            if version is None:
                return
            try:
                with transaction.atomic():
                    run = FlowRun.objects.create(
                        version=version,
                        contact=conversation.contact,
                        conversation=conversation,
                        current_node=g.graph_parse(version.graph).entry,
                    )
            except IntegrityError:
                return  # another worker started a run for this conversation at the same moment
            run.version = version
        ports = LivePorts(conversation=conversation, key=f"flow:{run.pk}:{message.pk}")
        _advance(run, event, ports, message.pk)


def flow_run_resume(*, run_id: int, token: int | None, now: datetime | None = None) -> bool:
    """End a Delay: continue the run if it still waits for this resume (a stale ETA task does nothing)."""
    now = now or timezone.now()
    with transaction.atomic():
        run = (
            FlowRun.objects.select_for_update(of=("self",))
            .select_related("version", "conversation", "conversation__contact", "conversation__account")
            .filter(pk=run_id, status=FlowRun.Status.WAITING, wait_until__lte=now)
            .first()
        )
        if run is None or (token is not None and token != run.resume_token):
            return False
        if run.conversation.status != Conversation.Status.BOT:
            _run_end(run, "the conversation left the bot before the delay ended")
            return False
        ports = LivePorts(conversation=run.conversation, key=f"flow:{run.pk}:resume:{run.resume_token}")
        _advance(run, engine.Event(kind="resume", now=now), ports, None)
    return True


def flow_runs_resume_due_sweep(*, now: datetime | None = None) -> int:
    """Resume Delays whose ETA task was lost (a worker restart, a broker flush)."""
    from apps.flows.selectors import flow_runs_resume_due

    now = now or timezone.now()
    return sum(flow_run_resume(run_id=pk, token=None, now=now) for pk in flow_runs_resume_due(now=now - RESUME_GRACE))


def _run_end(run: FlowRun, reason: str) -> None:
    run.status, run.current_node, run.wait_until, run.error = FlowRun.Status.FINISHED, "", None, reason
    run.save(update_fields=["status", "current_node", "wait_until", "error", "updated"])


def flow_runs_end_on_handoff(conversation: Conversation, reason: str) -> None:
    """People took the conversation: its flow stops, so it never answers over an agent."""
    with transaction.atomic():
        for run in FlowRun.objects.select_for_update().filter(conversation=conversation, status__in=FlowRun.ACTIVE):
            _run_end(run, f"handed off: {reason}"[:500])
