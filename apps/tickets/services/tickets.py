"""Tickets: creation (by hand, by API, from a conversation), changes with history, merging."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import Team, User
from apps.accounts.selectors import user_has_capability
from apps.ai.router import generate, provider_configured, summarize
from apps.conversations.models import Conversation, Message
from apps.core.queue import enqueue_on_commit
from apps.core.realtime import event_publish
from apps.core.tenancy import current_schema, schema_context
from apps.tickets.exceptions import TicketActionDenied, TicketInvalid, TicketMergeInvalid, TicketTransitionInvalid
from apps.tickets.models import Priority, Ticket, TicketEvent
from apps.tickets.selectors import handoffs_without_ticket, ticket_active_for_conversation, ticket_conversation_ids
from apps.tickets.services.csat import csat_request_for_ticket
from apps.tickets.services.risk import ticket_risk_refresh
from apps.tickets.services.sla import (
    SLA_FIELDS,
    sla_apply,
    sla_checks_schedule,
    sla_next_response_start,
    sla_pause,
    sla_paused_seconds_until,
    sla_resume,
)

logger = logging.getLogger(__name__)
Status = Ticket.Status

# Conversation priorities map onto ticket priorities ("normal" is "medium").
PRIORITY_FROM_CONVERSATION = {
    "low": Priority.LOW,
    "normal": Priority.MEDIUM,
    "high": Priority.HIGH,
    "urgent": Priority.URGENT,
}
TRANSITIONS: dict[str, set[str]] = {
    Status.NEW: {Status.OPEN, Status.PENDING, Status.ON_HOLD, Status.SOLVED, Status.CLOSED},
    Status.OPEN: {Status.PENDING, Status.ON_HOLD, Status.SOLVED, Status.CLOSED},
    Status.PENDING: {Status.OPEN, Status.ON_HOLD, Status.SOLVED, Status.CLOSED},
    Status.ON_HOLD: {Status.OPEN, Status.PENDING, Status.SOLVED, Status.CLOSED},
    Status.SOLVED: {Status.OPEN, Status.CLOSED},
    Status.CLOSED: set(),
}
TRANSCRIPT_MESSAGES = 20


def _require(user: User | None, capability: str) -> None:
    if user is not None and not user_has_capability(user=user, capability=capability):
        raise TicketActionDenied(_("Your role does not allow this."), extra={"capability": capability})


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (User, Team)):
        return value.pk
    return value


def ticket_event_payload(ticket: Ticket) -> dict[str, Any]:
    return {
        "ticket": ticket.pk,
        "status": ticket.status,
        "priority": ticket.priority,
        "assignee": ticket.assignee_id,
        "team": ticket.team_id,
        "risk_score": ticket.risk_score,
        "conversations": ticket_conversation_ids(ticket),
    }


def _record(
    ticket: Ticket, *, kind: str, actor: User | None, changes: dict[str, Any] | None = None, note: str = ""
) -> TicketEvent:
    event = TicketEvent.objects.create(ticket=ticket, kind=kind, actor=actor, changes=changes or {}, note=note[:300])
    payload = ticket_event_payload(ticket)
    payload.update(change=kind, actor=actor.pk if actor else None)
    for field in ("assignee", "team"):
        moved = (changes or {}).get(field)
        if isinstance(moved, dict) and "from" in moved:
            payload[f"previous_{field}"] = moved["from"]  # the queue it left must drop it
    event_publish(event_type="ticket.updated", data=payload)
    return event


def _clean_tags(tags: Iterable[str]) -> list[str]:
    return sorted({tag.strip().lower()[:50] for tag in tags if tag.strip()})


def _after_change(ticket: Ticket) -> None:
    """The SLA checks to queue and the risk to recompute after any change."""
    sla_checks_schedule(ticket=ticket)
    ticket_risk_refresh(ticket=ticket)


@transaction.atomic
def ticket_create(
    *,
    title: str,
    by: User | None,
    description: str = "",
    priority: str = Priority.MEDIUM,
    source: str = Ticket.Source.AGENT,
    conversations: Iterable[Conversation] = (),
    team: Team | None = None,
    assignee: User | None = None,
    tags: Iterable[str] = (),
    intent: str = "",
) -> Ticket:
    """Open a ticket; its SLA clocks start now."""
    _require(by, "respond_to_conversations")
    title = title.strip()
    if not title:
        raise TicketInvalid(_("A ticket needs a title."), extra={"field": "title"})
    if priority not in Priority.values:
        raise TicketInvalid(_("Unknown priority."), extra={"field": "priority", "priority": priority})
    linked = list(conversations)
    now = timezone.now()
    ticket = Ticket.objects.create(
        title=title[:200],
        description=description,
        priority=priority,
        source=source,
        team=team,
        assignee=assignee,
        tags=_clean_tags(tags),
        intent=intent[:64],
        contact=linked[0].contact if linked else None,
        created_by=by,
        last_activity_at=now,
    )
    if linked:
        ticket.conversations.add(*linked)
    sla_apply(ticket=ticket)
    ticket.save(update_fields=SLA_FIELDS)
    _record(
        ticket,
        kind=TicketEvent.Kind.CREATED,
        actor=by,
        changes={"source": source, "priority": priority, "conversations": [c.pk for c in linked]},
    )
    _after_change(ticket)
    return ticket


def _transcript(conversation: Conversation) -> list[Message]:
    recent = (Message.objects.filter(conversation=conversation).exclude(type="note").order_by("-sent_at", "-id"))[
        :TRANSCRIPT_MESSAGES
    ]
    return list(reversed(recent))


@dataclass(frozen=True)
class TicketText:
    title: str
    description: str
    intent: str
    written: bool  # by a provider; False: the conversation's own words (extractive summary and title)


def ticket_text_from_conversation(*, conversation: Conversation, reason: str = "", offline: bool = False) -> TicketText:
    """The title and description a provider writes from the conversation when one answers, else extractive ones.

    `offline=True` asks no provider: the extractive text at once, for callers inside a transaction.
    """
    messages = _transcript(conversation)
    lines = [f"{'Customer' if m.direction == 'in' else 'Agent'}: {m.text}" for m in messages if m.text.strip()]
    customer = [m for m in messages if m.direction == Message.Direction.INBOUND and m.text.strip()]
    intents = [m.intent for m in customer if m.intent and m.intent != "unknown"]
    intent = intents[-1] if intents else ""
    summary = summarize(lines, max_sentences=3, language=conversation.language or None, offline=offline)
    description = summary.text.strip() or (customer[-1].text if customer else "")
    title = ""
    if not summary.extractive:
        written = generate(
            "Write a support ticket title of at most 10 words for this conversation. "
            "Answer with the title only.\n\n" + "\n".join(lines[-10:]),
            max_tokens=30,
            temperature=0.2,
        )
        if written.available:
            title = written.text.strip().strip('"').splitlines()[0] if written.text.strip() else ""
    if not title:
        first = (
            customer[0].text.strip().splitlines()[0] if customer else _("Conversation %(id)s") % {"id": conversation.pk}
        )
        label = intent.replace("_", " ").capitalize()
        title = f"{label}: {first}" if label else first
    if intent:
        description = f"{description}\n\n{_('Intent')}: {intent}"
    if reason:
        description = f"{description}\n\n{_('Hand-off reason')}: {reason}"
    return TicketText(title.strip()[:200], description, intent, written=not summary.extractive)


def ticket_create_from_conversation(
    *,
    conversation: Conversation,
    by: User | None,
    source: str = Ticket.Source.AGENT,
    reason: str = "",
    write_now: bool = False,
) -> Ticket:
    """The conversation's open ticket, or a new one with a title and description written from the thread.

    A provider may take seconds to answer, and hand-offs, rules and flows open tickets inside
    the transaction that holds the conversation's row lock: no provider is asked here then.
    The ticket opens with the conversation's own words, and after the commit
    `ticket_text_write_task` has the provider rewrite them (only when one is configured).
    `write_now` (an agent's request, which holds no transaction) waits for the provider's
    text instead; inside a transaction it is ignored.
    """
    existing = ticket_active_for_conversation(conversation_id=conversation.pk)
    if existing is not None:
        return existing
    now = write_now and not transaction.get_connection().in_atomic_block
    text = ticket_text_from_conversation(conversation=conversation, reason=reason, offline=not now)
    with transaction.atomic():
        # Two hand-offs racing for the same conversation: the conversation row lock serialises them.
        Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
        existing = ticket_active_for_conversation(conversation_id=conversation.pk)
        if existing is not None:
            return existing
        ticket = ticket_create(
            title=text.title,
            description=text.description,
            by=by,
            priority=PRIORITY_FROM_CONVERSATION.get(conversation.priority, Priority.MEDIUM),
            source=source,
            conversations=[conversation],
            team=conversation.team,
            assignee=conversation.assigned_agent,
            tags=conversation.tags,
            intent=text.intent,
        )
        if not now and provider_configured("summarize"):
            from apps.tickets.tasks import ticket_text_write_task

            # What the ticket opened with, as stored: the write keeps a field that no longer holds it.
            enqueue_on_commit(
                ticket_text_write_task, ticket.pk, conversation.pk, reason, ticket.title, ticket.description
            )
        return ticket


def ticket_text_write(*, ticket_id: int, conversation_id: int, reason: str, title: str, description: str) -> list[str]:
    """Replace the extractive title and description a ticket opened with by a provider's; the fields replaced.

    Runs after the ticket's transaction committed and outside any other (`ticket_text_write_task`):
    the provider is asked with no lock held, then the ticket is locked for the short write.
    `title` and `description` are what the ticket opened with: a field that no longer holds
    it was edited meanwhile (by an agent) and keeps that edit.
    """
    ticket = Ticket.objects.filter(pk=ticket_id).first()
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if ticket is None or conversation is None or (ticket.title != title and ticket.description != description):
        return []  # gone, or both fields edited already: nothing to ask a provider for
    text = ticket_text_from_conversation(conversation=conversation, reason=reason)
    if not text.written:
        return []  # no provider answered: the conversation's own words stay
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().filter(pk=ticket_id).first()
        if ticket is None:
            return []
        changes: dict[str, dict[str, Any]] = {}
        for field, opened_with, new in (("title", title, text.title), ("description", description, text.description)):
            if getattr(ticket, field) == opened_with and new and new != opened_with:
                changes[field] = {"from": opened_with, "to": new}
                setattr(ticket, field, new)
        if not changes:
            return []
        ticket.save(update_fields=[*changes, "updated"])
        _record(
            ticket, kind=TicketEvent.Kind.CHANGED, actor=None, changes=changes, note=_("Written by the AI assistant.")
        )
    return list(changes)


def ticket_create_for_handoff(*, conversation_id: int, reason: str) -> Ticket | None:
    """The hand-off's ticket (idempotent); None when the conversation left people meanwhile."""
    conversation = Conversation.objects.select_related("contact").filter(pk=conversation_id).first()
    if conversation is None or conversation.status not in (
        Conversation.Status.WAITING,
        Conversation.Status.ASSIGNED,
    ):
        return None
    return ticket_create_from_conversation(
        conversation=conversation, by=None, source=Ticket.Source.HANDOFF, reason=reason
    )


def tickets_create_for_missed_handoffs(*, now: datetime | None = None) -> list[Ticket]:
    """Open the tickets of hand-offs whose creation failed or was lost (the Beat sweep).

    Idempotent: `ticket_create_from_conversation` returns the open ticket under the
    conversation's row lock, so the sweep, a retried task and the hand-off itself can
    race and still make one ticket.
    """
    now = now or timezone.now()
    grace = timedelta(seconds=settings.TICKET_HANDOFF_SWEEP_GRACE_SECONDS)
    created: list[Ticket] = []
    for conversation_id, reason in handoffs_without_ticket(now=now, grace=grace):
        try:
            ticket = ticket_create_for_handoff(conversation_id=conversation_id, reason=reason)
        except Exception:  # one broken conversation must not stop the others; the next sweep retries
            logger.exception("the ticket of the hand-off of conversation %s still fails", conversation_id)
            continue
        if ticket is not None:
            created.append(ticket)
    if created:
        logger.info("opened %d ticket(s) for hand-offs that had none", len(created))
    return created


_UNSET: Any = object()


@transaction.atomic
def ticket_update(
    *,
    ticket: Ticket,
    by: User | None,
    title: str | None = None,
    description: str | None = None,
    status: str | None = None,
    priority: str | None = None,
    assignee: User | None = _UNSET,
    team: Team | None = _UNSET,
    tags: Iterable[str] | None = None,
    note: str = "",
) -> Ticket:
    """Change any of the ticket's fields; each change goes into its history."""
    _require(by, "respond_to_conversations")
    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    changes: dict[str, dict[str, Any]] = {}
    now = timezone.now()

    def change(field: str, new: Any) -> None:
        old = getattr(ticket, field)
        if old != new:
            changes[field.removesuffix("_id")] = {"from": _value(old), "to": _value(new)}
            setattr(ticket, field, new)

    if title is not None:
        if not title.strip():
            raise TicketInvalid(_("A ticket needs a title."), extra={"field": "title"})
        change("title", title.strip()[:200])
    if description is not None:
        change("description", description)
    if priority is not None:
        if priority not in Priority.values:
            raise TicketInvalid(_("Unknown priority."), extra={"field": "priority", "priority": priority})
        change("priority", priority)
    if assignee is not _UNSET and (assignee.pk if assignee else None) != ticket.assignee_id:
        if not (by is None or (assignee is not None and assignee.pk == by.pk and ticket.assignee_id is None)):
            _require(by, "assign_conversations")
        change("assignee_id", assignee.pk if assignee else None)
    if team is not _UNSET:
        change("team_id", team.pk if team else None)
    if tags is not None:
        change("tags", _clean_tags(tags))
    scope_changed = bool({"priority", "team", "tags"} & changes.keys())
    if status is not None and status != ticket.status:
        changes["status"] = {"from": ticket.status, "to": status}
        _status_change(ticket, status, now)
    elif scope_changed and ticket.sla_paused_at is None:
        sla_apply(ticket=ticket)  # a new priority, team or tag may mean another policy
    if not changes:
        return ticket
    ticket.last_activity_at = now
    ticket.save()
    _record(ticket, kind=TicketEvent.Kind.CHANGED, actor=by, changes=changes, note=note)
    _after_change(ticket)
    if changes.get("status", {}).get("to") == Status.SOLVED:
        _csat_ask_on_commit(ticket.pk)
    return ticket


def _csat_ask_on_commit(ticket_id: int) -> None:
    """Ask the customer for a rating once the solve is committed; a failure never undoes the solve."""
    schema = current_schema()

    def ask() -> None:
        with schema_context(schema):
            try:
                csat_request_for_ticket(ticket_id=ticket_id)
            except Exception:  # the solve stands; the failure is logged with its context
                logger.exception("CSAT request for ticket %s failed in %s", ticket_id, schema)

    transaction.on_commit(ask)


def _status_change(ticket: Ticket, status: str, now: datetime) -> None:
    before = ticket.status
    if status not in Status.values or status not in TRANSITIONS[before]:
        raise TicketTransitionInvalid(
            _("A %(before)s ticket cannot become %(after)s.") % {"before": before, "after": status},
            extra={"from": before, "to": status, "allowed": sorted(TRANSITIONS[before])},
        )
    ticket.status = status
    if status in Ticket.PAUSED_STATUSES:
        sla_pause(ticket=ticket, now=now)
    elif status in (Status.NEW, Status.OPEN):
        if before == Status.SOLVED:
            ticket.solved_at = None
        if ticket.sla_paused_at is not None:
            sla_resume(ticket=ticket, now=now)
        else:
            sla_apply(ticket=ticket)
    if status == Status.SOLVED:
        ticket.solved_at = now
        sla_apply(ticket=ticket)  # inactive: the clocks stop
    if status == Status.CLOSED:
        ticket.closed_at = now
        sla_apply(ticket=ticket)


@transaction.atomic
def ticket_conversation_link(*, ticket: Ticket, conversation: Conversation, by: User | None) -> Ticket:
    if ticket.conversations.filter(pk=conversation.pk).exists():
        return ticket
    ticket.conversations.add(conversation)
    if ticket.contact_id is None:
        Ticket.objects.filter(pk=ticket.pk).update(contact=conversation.contact_id)
    _record(ticket, kind=TicketEvent.Kind.LINKED, actor=by, changes={"conversation": conversation.pk})
    return ticket


@transaction.atomic
def ticket_merge(*, source: Ticket, target: Ticket, by: User | None) -> Ticket:
    """Merge a duplicate into another ticket: conversations and tags move, the duplicate closes."""
    _require(by, "respond_to_conversations")
    if source.pk == target.pk:
        raise TicketMergeInvalid(_("A ticket cannot be merged into itself."), extra={"ticket": source.pk})
    # Lock both in id order, so two opposite merges cannot deadlock.
    locked = {t.pk: t for t in Ticket.objects.select_for_update().filter(pk__in=[source.pk, target.pk]).order_by("pk")}
    source, target = locked[source.pk], locked[target.pk]
    if source.status == Status.CLOSED or target.status == Status.CLOSED:
        raise TicketMergeInvalid(
            _("Closed tickets cannot be merged."), extra={"source": source.pk, "target": target.pk}
        )
    moved = list(source.conversations.exclude(tickets=target))
    target.conversations.add(*moved)
    target.tags = _clean_tags([*target.tags, *source.tags])
    if Priority.values.index(source.priority) > Priority.values.index(target.priority):
        target.priority = source.priority  # the merged ticket keeps the more urgent priority
        sla_apply(ticket=target)
    if target.contact_id is None:
        target.contact_id = source.contact_id
    target.last_activity_at = timezone.now()
    target.save()
    source.status = Status.CLOSED
    source.merged_into = target
    source.closed_at = timezone.now()
    sla_apply(ticket=source)
    source.save()
    _record(
        target,
        kind=TicketEvent.Kind.MERGED,
        actor=by,
        changes={"merged": source.pk, "conversations": [c.pk for c in moved]},
    )
    _record(source, kind=TicketEvent.Kind.MERGED, actor=by, changes={"into": target.pk, "status": {"to": "closed"}})
    _after_change(target)
    ticket_risk_refresh(ticket=source)
    return target


# --- reactions to the conversation (called by apps.tickets.receivers) ---------------------


@transaction.atomic
def ticket_customer_wrote(*, ticket: Ticket, message: Message) -> Ticket:
    """A customer message: a ticket pending on them reopens, and the next-response clock starts."""
    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    changes: dict[str, Any] = {}
    now = timezone.now()
    if ticket.status == Status.PENDING:
        _status_change(ticket, Status.OPEN, now)
        changes["status"] = {"from": Status.PENDING, "to": Status.OPEN}
    if ticket.first_responded_at is not None and ticket.next_response_started_at is None:
        sla_next_response_start(ticket=ticket, at=message.sent_at)
        if ticket.sla_paused_at is None:
            sla_apply(ticket=ticket)
    ticket.last_activity_at = now
    ticket.save()
    if changes:
        _record(ticket, kind=TicketEvent.Kind.CHANGED, actor=None, changes=changes, note=_("customer replied"))
    _after_change(ticket)
    return ticket


@transaction.atomic
def ticket_agent_replied(*, ticket: Ticket, message: Message) -> Ticket:
    """An agent answered: the first-response (or next-response) clock stops."""
    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    if ticket.first_responded_at is None:
        ticket.first_responded_at = message.sent_at
        ticket.first_response_paused_seconds = sla_paused_seconds_until(ticket=ticket, moment=message.sent_at)
    ticket.next_response_started_at = None
    if ticket.status == Status.NEW:
        ticket.status = Status.OPEN
    if ticket.sla_paused_at is None:
        sla_apply(ticket=ticket)
    else:
        ticket.first_response_due_at = ticket.first_response_risk_at = None
        ticket.next_response_due_at = ticket.next_response_risk_at = None
    ticket.last_activity_at = timezone.now()
    ticket.save()
    _after_change(ticket)
    return ticket
