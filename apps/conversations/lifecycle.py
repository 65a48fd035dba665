"""Conversation lifecycle: bot → waiting → assigned → resolved → closed, and back.

Every transition is one service that checks who may do it, writes the audit row
(`ConversationEvent`: who, when, why), and tells the tenant's sockets after the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import Team, User
from apps.accounts.selectors import user_has_capability
from apps.conversations import hooks
from apps.conversations.exceptions import (
    AgentUnavailable,
    ConversationActionDenied,
    ConversationTransitionInvalid,
)
from apps.conversations.models import Conversation, ConversationEvent
from apps.core.realtime import event_publish

Status = Conversation.Status
Kind = ConversationEvent.Kind


def _locked(conversation: Conversation) -> Conversation:
    """The conversation re-read under a row lock, so concurrent transitions serialise."""
    return Conversation.objects.select_for_update().get(pk=conversation.pk)


def _require(user: User | None, capability: str) -> None:
    if user is not None and not user_has_capability(user=user, capability=capability):
        raise ConversationActionDenied(
            _("Your role does not allow this."), extra={"capability": capability, "user": user.pk}
        )


def _require_status(conversation: Conversation, allowed: Sequence[str], action: str) -> None:
    if conversation.status not in allowed:
        raise ConversationTransitionInvalid(
            _("A conversation that is %(status)s cannot be %(action)s.")
            % {"status": conversation.get_status_display().lower(), "action": action},
            extra={"status": conversation.status, "allowed": list(allowed)},
        )


def conversation_awaits_agent(conversation: Conversation) -> bool:
    """Whether automatic assignment may take it: waiting in a queue, nobody's, not snoozed."""
    return (
        conversation.status == Status.WAITING and conversation.assigned_agent_id is None and not conversation.is_snoozed
    )


def _can_serve(agent: User) -> bool:
    return user_has_capability(user=agent, capability="respond_to_conversations")


def _record(
    conversation: Conversation,
    *,
    kind: str,
    actor: User | None,
    from_status: str,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> ConversationEvent:
    event = ConversationEvent.objects.create(
        conversation=conversation,
        kind=kind,
        actor=actor,
        from_status=from_status,
        to_status=conversation.status,
        reason=reason[:300],
        data=data or {},
    )
    payload = conversation_event_payload(conversation)
    payload.update(change=kind, actor=actor.pk if actor else None, reason=event.reason)
    if data and data.get("previous_agent"):
        payload["previous_agent"] = data["previous_agent"]  # so the previous agent's inbox hears it left
    if kind in (Kind.ASSIGNED, Kind.TAKEOVER) and data and data.get("previous_agent") is None:
        # It was in the unassigned queue: everyone who saw it there must hear it leave.
        payload["left_queue"] = True
    event_publish(event_type="conversation.updated", data=payload)
    if kind in (Kind.ASSIGNED, Kind.TAKEOVER) and conversation.assigned_agent_id is not None:
        # The agent's own sockets: a browser notification for a new assignment.
        event_publish(event_type="conversation.assigned", data=payload, user_id=conversation.assigned_agent_id)
    return event


def conversation_event_payload(conversation: Conversation) -> dict[str, Any]:
    return {
        "conversation": conversation.pk,
        "status": conversation.status,
        "assigned_agent": conversation.assigned_agent_id,
        "team": conversation.team_id,
        "priority": conversation.priority,
        "is_snoozed": conversation.is_snoozed,
    }


def _assign_fields(conversation: Conversation, agent: User, now: datetime) -> None:
    conversation.status = Status.ASSIGNED
    conversation.assigned_agent = agent
    conversation.assigned_at = now
    conversation.waiting_since = None
    conversation.is_snoozed = False
    conversation.snoozed_until = None


@transaction.atomic
def conversation_handoff(*, conversation: Conversation, reason: str, by: User | None = None) -> Conversation:
    """The bot hands the conversation to people: it waits in its team's queue for an agent."""
    conversation = _locked(conversation)
    if conversation.status in (Status.WAITING, Status.ASSIGNED):
        return conversation  # already with people: asking twice changes nothing
    _require_status(conversation, [Status.BOT, Status.RESOLVED], _("handed off"))
    before = conversation.status
    conversation.status = Status.WAITING
    conversation.waiting_since = timezone.now()
    conversation.handoff_reason = reason[:200]
    conversation.save()
    _record(conversation, kind=Kind.HANDOFF, actor=by, from_status=before, reason=reason)
    hooks.hooks_fire(hooks.on_handoff, conversation, reason)
    from apps.conversations.assignment import conversation_assign_auto

    return conversation_assign_auto(conversation=conversation) or conversation


@transaction.atomic
def conversation_takeover(*, conversation: Conversation, agent: User) -> Conversation:
    """An agent takes the conversation, from the bot or from the queue."""
    _require(agent, "respond_to_conversations")
    conversation = _locked(conversation)
    if conversation.status == Status.ASSIGNED and conversation.assigned_agent_id == agent.pk:
        return conversation
    if conversation.status == Status.ASSIGNED:
        # Taking a colleague's conversation is a reassignment: managers only.
        _require(agent, "assign_conversations")
    _require_status(conversation, [Status.BOT, Status.WAITING, Status.ASSIGNED, Status.RESOLVED], _("taken over"))
    before, previous_agent = conversation.status, conversation.assigned_agent_id
    _assign_fields(conversation, agent, timezone.now())
    conversation.save()
    _record(conversation, kind=Kind.TAKEOVER, actor=agent, from_status=before, data={"previous_agent": previous_agent})
    hooks.hooks_fire(hooks.on_assigned, conversation, previous_agent)
    return conversation


@transaction.atomic
def conversation_assign(*, conversation: Conversation, agent: User, by: User | None, reason: str = "") -> Conversation:
    """Assign (or reassign) to an agent. `by=None` is the automatic assignment."""
    _require(by, "assign_conversations")
    if not agent.is_active or not _can_serve(agent):
        raise AgentUnavailable(
            _("%(agent)s cannot take conversations.") % {"agent": agent.get_full_name() or agent.email},
            extra={"agent": agent.pk},
        )
    conversation = _locked(conversation)
    if by is None:
        # The automatic path chose its agent on an unlocked read: it may only take a
        # conversation still waiting for one; a takeover or resolve that landed since stands.
        _require_status(
            conversation, [Status.WAITING] if conversation_awaits_agent(conversation) else [], _("assigned")
        )
    _require_status(conversation, [Status.BOT, Status.WAITING, Status.ASSIGNED, Status.RESOLVED], _("assigned"))
    if conversation.status == Status.ASSIGNED and conversation.assigned_agent_id == agent.pk:
        return conversation
    before, previous_agent = conversation.status, conversation.assigned_agent_id
    now = timezone.now()
    _assign_fields(conversation, agent, now)
    conversation.save()
    from apps.accounts.models import AgentProfile

    AgentProfile.objects.filter(user=agent).update(last_assigned_at=now)
    _record(
        conversation,
        kind=Kind.ASSIGNED,
        actor=by,
        from_status=before,
        reason=reason or (_("automatic assignment") if by is None else ""),
        data={"agent": agent.pk, "previous_agent": previous_agent},
    )
    hooks.hooks_fire(hooks.on_assigned, conversation, previous_agent)
    return conversation


@transaction.atomic
def conversation_unassign(*, conversation: Conversation, by: User) -> Conversation:
    """Put an assigned conversation back in its team's queue."""
    conversation = _locked(conversation)
    if conversation.assigned_agent_id != by.pk:
        _require(by, "assign_conversations")
    _require_status(conversation, [Status.ASSIGNED], _("unassigned"))
    previous_agent = conversation.assigned_agent_id
    conversation.status = Status.WAITING
    conversation.assigned_agent = None
    conversation.waiting_since = timezone.now()
    conversation.save()
    _record(
        conversation,
        kind=Kind.UNASSIGNED,
        actor=by,
        from_status=Status.ASSIGNED,
        data={"previous_agent": previous_agent},
    )
    return conversation


@transaction.atomic
def conversation_return_to_bot(*, conversation: Conversation, by: User, reason: str = "") -> Conversation:
    """Give the conversation back to automation (an explicit agent action)."""
    _require(by, "respond_to_conversations")
    conversation = _locked(conversation)
    if conversation.assigned_agent_id not in (None, by.pk):
        _require(by, "assign_conversations")
    _require_status(conversation, [Status.WAITING, Status.ASSIGNED], _("returned to the bot"))
    before = conversation.status
    conversation.status = Status.BOT
    conversation.assigned_agent = None
    conversation.waiting_since = None
    conversation.save()
    _record(conversation, kind=Kind.RETURNED_TO_BOT, actor=by, from_status=before, reason=reason)
    return conversation


@transaction.atomic
def conversation_resolve(*, conversation: Conversation, by: User | None, reason: str = "") -> Conversation:
    """Mark the conversation resolved; the customer's next message reopens it."""
    _require(by, "resolve_conversations")
    conversation = _locked(conversation)
    if by is not None and conversation.assigned_agent_id not in (None, by.pk):
        _require(by, "assign_conversations")
    if conversation.status == Status.RESOLVED:
        return conversation
    _require_status(conversation, [Status.BOT, Status.WAITING, Status.ASSIGNED], _("resolved"))
    before = conversation.status
    conversation.status = Status.RESOLVED
    conversation.resolved_at = timezone.now()
    conversation.waiting_since = None
    conversation.is_snoozed = False
    conversation.snoozed_until = None
    conversation.save()
    _record(conversation, kind=Kind.RESOLVED, actor=by, from_status=before, reason=reason)
    hooks.hooks_fire(hooks.on_resolved, conversation)
    if before == Status.ASSIGNED:
        from apps.conversations.assignment import assignment_queue_drain_on_commit

        assignment_queue_drain_on_commit()  # the agent has room for the next one
    return conversation


@transaction.atomic
def conversation_close(*, conversation: Conversation, by: User | None, reason: str = "") -> Conversation:
    """Close for good: the customer's next message starts a new conversation."""
    _require(by, "resolve_conversations")
    conversation = _locked(conversation)
    if conversation.status == Status.CLOSED:
        return conversation
    before = conversation.status
    conversation.status = Status.CLOSED
    conversation.waiting_since = None
    conversation.save()
    _record(conversation, kind=Kind.CLOSED, actor=by, from_status=before, reason=reason)
    return conversation


def conversation_reopen_on_inbound(*, conversation: Conversation) -> None:
    """A customer message reopens a resolved conversation and ends a snooze (caller holds the lock)."""
    if conversation.is_snoozed:
        conversation.is_snoozed = False
        conversation.snoozed_until = None
        conversation.save()
        _record(conversation, kind=Kind.UNSNOOZED, actor=None, from_status=conversation.status)
    if conversation.status != Status.RESOLVED:
        return
    agent = conversation.assigned_agent
    if agent is not None and agent.is_active and _can_serve(agent):
        conversation.status = Status.ASSIGNED  # back to the agent who resolved it
    else:
        conversation.status = Status.BOT
        conversation.assigned_agent = None
    conversation.resolved_at = None
    conversation.save()
    _record(conversation, kind=Kind.REOPENED, actor=None, from_status=Status.RESOLVED, reason=_("customer wrote"))


@transaction.atomic
def conversation_snooze(*, conversation: Conversation, by: User, until: datetime | None) -> Conversation:
    """Hide the conversation from the queues until a time, or until the customer writes."""
    _require(by, "respond_to_conversations")
    if until is not None and until <= timezone.now():
        raise ConversationTransitionInvalid(_("Snooze until a time in the future."), extra={"until": until.isoformat()})
    conversation = _locked(conversation)
    _require_status(conversation, [Status.BOT, Status.WAITING, Status.ASSIGNED], _("snoozed"))
    conversation.is_snoozed = True
    conversation.snoozed_until = until
    conversation.save()
    _record(
        conversation,
        kind=Kind.SNOOZED,
        actor=by,
        from_status=conversation.status,
        data={"until": until.isoformat() if until else None},
    )
    return conversation


def conversations_unsnooze_due() -> int:
    """End the snoozes whose time has come (Beat, per tenant)."""
    count = 0
    due = Conversation.objects.filter(is_snoozed=True, snoozed_until__lte=timezone.now()).values_list("pk", flat=True)
    for pk in list(due[:1000]):
        with transaction.atomic():
            conversation = Conversation.objects.select_for_update().get(pk=pk)
            if not conversation.is_snoozed:
                continue
            conversation.is_snoozed = False
            conversation.snoozed_until = None
            conversation.save()
            _record(conversation, kind=Kind.UNSNOOZED, actor=None, from_status=conversation.status)
            count += 1
    return count


@transaction.atomic
def conversation_update(
    *,
    conversation: Conversation,
    by: User | None,
    priority: str | None = None,
    team: Team | bool | None = False,
    tags: list[str] | None = None,
) -> Conversation:
    """Change priority, team (None: no team) or tags; each change is audited. `by=None`: automation."""
    _require(by, "respond_to_conversations")
    conversation = _locked(conversation)
    changes: list[tuple[str, dict[str, Any]]] = []
    if priority is not None and priority != conversation.priority:
        if priority not in Conversation.Priority.values:
            raise ConversationTransitionInvalid(_("Unknown priority."), extra={"priority": priority})
        changes.append((Kind.PRIORITY, {"from": conversation.priority, "to": priority}))
        conversation.priority = priority
    if team is not False and (team.pk if isinstance(team, Team) else None) != conversation.team_id:
        _require(by, "assign_conversations")
        new_team = team if isinstance(team, Team) else None
        changes.append((Kind.TEAM, {"from": conversation.team_id, "to": new_team.pk if new_team else None}))
        conversation.team = new_team
    if tags is not None:
        cleaned = sorted({tag.strip().lower()[:50] for tag in tags if tag.strip()})
        if cleaned != sorted(conversation.tags):
            changes.append((Kind.TAGS, {"from": conversation.tags, "to": cleaned}))
            conversation.tags = cleaned
    if changes:
        conversation.save()
        for kind, data in changes:
            _record(conversation, kind=kind, actor=by, from_status=conversation.status, data=data)
    return conversation
