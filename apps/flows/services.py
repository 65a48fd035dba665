"""Publishing flows and running them for analysed inbound messages and Delay resumes."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.contacts.keywords import consent_keyword
from apps.conversations.lifecycle import conversation_handoff
from apps.conversations.models import Conversation, Message
from apps.conversations.services import message_send
from apps.core.batches import delete_in_batches
from apps.core.exceptions import ApplicationError, RetryLater
from apps.core.queue import enqueue_on_commit
from apps.flows import engine
from apps.flows import graph as g
from apps.flows.live_ports import LivePorts, effects_apply
from apps.flows.models import Flow, FlowRun, FlowRunStep, FlowVersion
from apps.flows.selectors import flow_run_active_for_conversation, flow_version_latest_number, flow_versions_live
from apps.knowledge.autoreply import bot_reply
from apps.tickets.business_hours import business_seconds_between
from apps.tickets.models import BusinessCalendar
from apps.tickets.services.sla import calendar_schedule
from apps.whatsapp import messages as wa
from apps.whatsapp.outbox import WindowClosed

logger = logging.getLogger(__name__)

RESUME_GRACE = timedelta(seconds=30)  # the sweep leaves on-time resumes to their ETA task
COMMIT_ATTEMPTS = 3  # a walk whose run moved meanwhile is computed again, this many times at most
# How long a claimed run belongs to the event being walked. Well above a walk's worst case
# (API Calls time out after 5 s, providers sooner than a minute); a worker that dies mid-walk
# only delays the conversation's next event by this much.
CLAIM_LEASE = timedelta(minutes=2)


class FlowNotPublished(ApplicationError):
    code = "flow_not_published"


class FlowRunBusy(RetryLater):
    """Another event of the conversation is being walked; this one's task retries shortly."""

    code = "flow_run_busy"


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
        reply_language=conversation.language or message.language,
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


def _consumed(conversation: Conversation, message: Message) -> FlowRun | None:
    """The run that already took this message (or a newer one): a retried or overtaken task."""
    return (
        FlowRun.objects.filter(conversation=conversation, last_message_id__gte=message.pk)
        .order_by("-last_message_id")
        .first()
    )


def flow_claims_message(message: Message) -> bool:
    """Whether a flow handles this message (a run is active, or a trigger matches): no side effects."""
    conversation = message.conversation
    if not _automatable(message, conversation):
        return False
    if flow_run_active_for_conversation(conversation_id=conversation.pk) is not None:
        return True
    if _consumed(conversation, message) is not None:
        return True  # a retried task: a run already took this message (its failure has its own fallback)
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


def _contact_variables(conversation: Conversation) -> dict[str, Any]:
    name = conversation.contact.profile_name.strip()
    return {
        "contact": {"name": name, "first_name": name.split(" ")[0] if name else "", "phone": conversation.contact.wa_id}
    }


@dataclass(frozen=True)
class _Computed:
    """One event's walk through a flow, computed outside any transaction, not yet committed."""

    state: engine.State
    steps: list[engine.Step]
    ports: LivePorts
    wall: datetime  # when the walk started, for the steps' timestamps
    waits_on_delay: bool  # the run stopped on a Delay (its deadline stands), not on the customer


def _compute(version: FlowVersion, state: engine.State, event: engine.Event, ports: LivePorts) -> _Computed:
    # Providers, the knowledge answerer and API Calls are called from here: never inside a
    # transaction, so no row lock (run, conversation) waits on a slow outside service.
    graph = g.graph_parse(version.graph)
    wall = timezone.now()
    with translation.override(event.reply_language or None):
        new_state, steps = engine.run(graph, state, event, ports)
    waiting = graph.nodes.get(new_state.node_id or "") if new_state.status == engine.WAITING else None
    return _Computed(new_state, steps, ports, wall, waiting is not None and waiting.type == g.DELAY)


def _record(run: FlowRun, computed: _Computed, event: engine.Event, message_id: int | None) -> FlowRun:
    """Write the computed walk: the run's new state, its steps, its effects (inside the commit)."""
    state, steps, ports = computed.state, computed.steps, computed.ports
    run.current_node = state.node_id or ""
    run.status = state.status
    run.variables = state.variables
    run.retries = state.retries
    run.steps_total = state.steps_total
    run.error = state.error[:2000]
    run.revision += 1
    run.claim, run.claim_expires = "", None
    delay = ports.resume_seconds if state.status == engine.WAITING else None
    if delay is not None:
        run.wait_until = (event.now or timezone.now()) + timedelta(seconds=delay)
        run.resume_token += 1
    elif not computed.waits_on_delay:
        # Past its Delay (now on Quick Replies, or ended): a deadline left behind would have the
        # sweep resume the run every minute, and crowd out the real Delays it resumes 500 at a time.
        run.wait_until = None
    if message_id is not None:
        run.last_message_id = message_id
    run.save()
    if delay is not None:
        from apps.flows.tasks import flow_run_resume_task

        enqueue_on_commit(flow_run_resume_task, run.pk, run.resume_token, countdown=delay)
    # The effects first: a send that may not go (window closed, marketing after a STOP) is
    # noted on the step that asked for it, so the execution log shows what the customer missed.
    skipped = effects_apply(effects=ports.effects, conversation=ports.conversation, key=ports.key)
    origin = steps[0].started if steps else 0.0
    FlowRunStep.objects.bulk_create(
        FlowRunStep(
            run=run,
            node_id=s.node_id,
            node_type=s.node_type,
            branch=s.branch,
            message_id=message_id,
            started=computed.wall + timedelta(seconds=s.started - origin),
            duration_ms=s.duration_ms,
            error="; ".join(filter(None, (s.error, skipped.get(index, ""))))[:2000],
        )
        for index, s in enumerate(steps)
    )
    if state.status == engine.FAILED:
        logger.warning("flow run %s failed at %s: %s", run.pk, state.node_id, state.error)
    return run


def _locked_conversation(conversation_id: int) -> Conversation:
    # The conversation's row lock orders a commit with the hand-off and tag changes its
    # effects make; it is held for milliseconds, never during the walk.
    return (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("contact", "account")
        .get(pk=conversation_id)
    )


class _Outcome(enum.Enum):
    DONE = "done"  # committed, or nothing to do
    FAILED = "failed"  # the run failed on this message: the knowledge reply answers instead
    CONFLICT = "conflict"  # the run moved while the walk was computed (a hand-off): look again


def _claimed(run: FlowRun, claim: str, now: datetime) -> FlowRun:
    # Lock-free from here on: other events see the claim and wait for it (or for its lease).
    run.claim, run.claim_expires = claim, now + CLAIM_LEASE
    run.revision += 1
    run.save()
    return run


def _claim_for_message(
    message: Message, conversation: Conversation, event: engine.Event, claim: str
) -> FlowRun | _Outcome:
    """Take the conversation's run for this message (starting one if a trigger matches), or say why not."""
    now = timezone.now()
    with transaction.atomic():
        run = (
            FlowRun.objects.select_for_update(of=("self",))
            .select_related("version")
            .filter(conversation=conversation, status__in=FlowRun.ACTIVE)
            .first()
        )
        if run is not None:
            if run.last_message_id is not None and run.last_message_id >= message.pk:
                return _Outcome.DONE  # a retry of a message this run already consumed
            if run.claim and run.claim != claim and run.claim_expires is not None and run.claim_expires > now:
                # An earlier message (or a Delay's end) is being walked: this one follows it.
                raise FlowRunBusy(f"run {run.pk} is busy with {run.claim}", extra={"run": run.pk})
            return _claimed(run, claim, now)
        consumed = _consumed(conversation, message)
        if consumed is not None:
            # A retried task. If the run failed on this very message, its fallback may not have
            # completed (the worker died): the fallback is idempotent, so it runs again.
            failed = consumed.status == FlowRun.Status.FAILED and consumed.last_message_id == message.pk
            return _Outcome.FAILED if failed else _Outcome.DONE
        version = _triggered(event)
        if version is None:
            return _Outcome.DONE
        if version.flow.trigger.get("kind", "catch_all") == "catch_all" and _newer_inbound(message):
            return _Outcome.DONE  # the customer wrote again: a catch-all answers the latest message
        graph = g.graph_parse(version.graph)
        run = FlowRun(
            version=version,
            contact=conversation.contact,
            conversation=conversation,
            current_node=graph.entry,
            variables=_contact_variables(conversation),
        )
        try:
            with transaction.atomic():
                return _claimed(run, claim, now)
        except IntegrityError as exc:  # another message started a run this very moment
            raise FlowRunBusy(f"conversation {conversation.pk} is starting a run", extra={}) from exc


def _handle_once(message: Message) -> _Outcome:
    conversation = Conversation.objects.select_related("contact", "account").get(pk=message.conversation_id)
    if not _automatable(message, conversation):
        return _Outcome.DONE
    event = _event(message, conversation)
    claim = f"m:{message.pk}"
    run = _claim_for_message(message, conversation, event, claim)
    if isinstance(run, _Outcome):
        return run
    # "bot:<message id>:<n>": the bot's replies to that message (the knowledge reply checks them).
    ports = LivePorts(conversation=conversation, key=f"bot:{message.pk}")
    computed = _compute(run.version, _state(run), event, ports)
    with transaction.atomic():
        locked = _locked_conversation(conversation.pk)
        current = FlowRun.objects.select_for_update(of=("self",)).filter(pk=run.pk).first()
        if current is None or current.revision != run.revision or current.claim != claim:
            return _Outcome.CONFLICT  # a hand-off ended the run, or the lease ran out and another took it
        if not _automatable(message, locked):
            _run_end(current, "the conversation left the bot while the flow ran")
            return _Outcome.DONE
        current.version = run.version  # pinned: the version the run started with
        ports.conversation = locked
        _record(current, computed, event, message.pk)
    return _Outcome.FAILED if computed.state.status == engine.FAILED else _Outcome.DONE


def _newer_inbound(message: Message) -> bool:
    return Message.objects.filter(
        conversation_id=message.conversation_id, direction=Message.Direction.INBOUND, pk__gt=message.pk
    ).exists()


def flow_handle_message(message: Message) -> None:
    """Run the conversation's active flow, or start the best-matching one (idempotent).

    Three steps, so that no transaction or row lock spans the walk's provider and HTTP calls:
    claim the run (a short transaction marks it with this message and a lease), walk the
    graph outside any transaction (effects on our data are only recorded), then commit the
    new state and apply the effects in a short transaction, if the claim still holds. Another
    event for the same conversation meanwhile raises `FlowRunBusy` and its task retries, so
    one conversation's messages are still walked one at a time and in order. A run that fails
    hands the message to the knowledge reply, so the customer is never left unanswered.
    """
    for _attempt in range(COMMIT_ATTEMPTS):
        outcome = _handle_once(message)
        if outcome is _Outcome.FAILED:
            _failure_fallback(message)
        if outcome is not _Outcome.CONFLICT:
            return
    raise FlowRunBusy(f"the flow run of conversation {message.conversation_id} kept moving; retry later")


def _failure_fallback(message: Message) -> None:
    """The flow failed on this message: answer from the knowledge base, or hand off (idempotent)."""
    if Message.objects.filter(outbox__idempotency_key=f"bot:{message.pk}").exists():
        return  # a retried task: the fallback already answered
    try:
        bot_reply(message)
    except Exception:  # the knowledge answer failed too: a person must take over
        logger.exception("knowledge fallback for message %s failed; handing off", message.pk)
        with transaction.atomic():
            conversation = _locked_conversation(message.conversation_id)
            if conversation.status != Conversation.Status.BOT:
                return
            conversation = conversation_handoff(
                conversation=conversation, reason="the flow and the knowledge reply failed"
            )
            with translation.override(conversation.language or None):
                notice = _("Thank you. I am connecting you with a member of our team; they will reply here shortly.")
            try:
                message_send(
                    conversation=conversation,
                    outgoing=wa.text(notice),
                    author_kind=Message.Author.BOT,
                    idempotency_key=f"bot:{message.pk}",
                )
            except WindowClosed:
                logger.warning("fallback notice for message %s not sent: the window is closed", message.pk)


def _claim_for_resume(run_id: int, token: int | None, now: datetime) -> FlowRun | None:
    with transaction.atomic():
        run = (
            FlowRun.objects.select_for_update(of=("self",))
            .select_related("version", "conversation", "conversation__contact", "conversation__account")
            .filter(pk=run_id, status=FlowRun.Status.WAITING, wait_until__lte=now)
            .first()
        )
        if run is None or (token is not None and token != run.resume_token):
            return None
        if run.claim and run.claim_expires is not None and run.claim_expires > now:
            return None  # a message is being walked; the sweep resumes the Delay after it
        if run.conversation.status != Conversation.Status.BOT:
            _run_end(run, "the conversation left the bot before the delay ended")
            return None
        return _claimed(run, f"r:{run.resume_token}", now)


def flow_run_resume(*, run_id: int, token: int | None, now: datetime | None = None) -> bool:
    """End a Delay: continue the run if it still waits for this resume (a stale ETA task does nothing)."""
    now = now or timezone.now()
    run = _claim_for_resume(run_id, token, now)
    if run is None:
        return False
    conversation = run.conversation
    event = engine.Event(kind="resume", now=now, reply_language=conversation.language)
    ports = LivePorts(conversation=conversation, key=f"flow:{run.pk}:resume:{run.resume_token}")
    computed = _compute(run.version, _state(run), event, ports)
    with transaction.atomic():
        locked_conversation = _locked_conversation(conversation.pk)
        current = FlowRun.objects.select_for_update(of=("self",)).filter(pk=run.pk).first()
        if current is None or current.revision != run.revision or current.claim != run.claim:
            return False  # a hand-off ended the run meanwhile
        if locked_conversation.status != Conversation.Status.BOT:
            _run_end(current, "the conversation left the bot before the delay ended")
            return False
        current.version = run.version
        ports.conversation = locked_conversation
        _record(current, computed, event, None)
        if computed.state.status == engine.FAILED:
            # Nobody asked anything: a person follows up on what the flow could not finish.
            after = Conversation.objects.select_related("contact", "account").get(pk=conversation.pk)
            if after.status == Conversation.Status.BOT:
                conversation_handoff(conversation=after, reason=f"flow failed: {computed.state.error}"[:200])
    return True


def flow_runs_resume_due_sweep(*, now: datetime | None = None) -> int:
    """Resume Delays whose ETA task was lost (a worker restart, a broker flush)."""
    from apps.flows.selectors import flow_runs_resume_due

    now = now or timezone.now()
    return sum(flow_run_resume(run_id=pk, token=None, now=now) for pk in flow_runs_resume_due(now=now - RESUME_GRACE))


PRUNE_BATCH = 500


def flow_runs_prune(*, older_than_days: int, now: datetime | None = None) -> int:
    """Delete ended runs (finished, failed) and their steps, untouched for N days; active runs stay."""
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    ended = FlowRun.objects.filter(status__in=(FlowRun.Status.FINISHED, FlowRun.Status.FAILED), updated__lt=cutoff)
    return delete_in_batches(ended, batch_size=PRUNE_BATCH)  # steps cascade


def _run_end(run: FlowRun, reason: str) -> None:
    run.status, run.current_node, run.wait_until, run.error = FlowRun.Status.FINISHED, "", None, reason
    run.claim, run.claim_expires = "", None
    run.revision += 1
    run.save(
        update_fields=["status", "current_node", "wait_until", "error", "claim", "claim_expires", "revision", "updated"]
    )


def flow_runs_end_on_handoff(conversation: Conversation, reason: str) -> None:
    """People took the conversation: its flow stops, so it never answers over an agent."""
    with transaction.atomic():
        for run in FlowRun.objects.select_for_update(of=("self",)).filter(
            conversation=conversation, status__in=FlowRun.ACTIVE
        ):
            _run_end(run, f"handed off: {reason}"[:500])
