"""Automatic assignment of waiting conversations to online agents with room for them.

Least loaded (ties: the agent who waited longest for a new conversation) or round robin,
per team. An agent is a candidate when they are online, active, allowed to respond, a
member of the conversation's team (when it has one), below their max concurrent chats,
and speak the conversation's language (an agent who lists no language speaks any).
Conversations nobody can take wait in the queue; `assignment_queue_drain` assigns them
when capacity frees up (a resolve, an agent coming online: Beat runs it every 30 s).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import Q

from apps.accounts.models import AgentProfile, Team, User
from apps.conversations.lifecycle import conversation_assign, conversation_awaits_agent
from apps.conversations.models import Conversation
from apps.conversations.selectors import agent_open_loads
from apps.core.queue import enqueue_on_commit
from apps.core.tenancy import current_schema

logger = logging.getLogger(__name__)

NEVER = datetime.min.replace(tzinfo=UTC)
DRAIN_LIMIT = 200


def _lock_assignments() -> None:
    """One assignment at a time per tenant, so two workers never overfill the same agent."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{current_schema()}:assignment"])


def _candidates(conversation: Conversation) -> list[AgentProfile]:
    profiles = AgentProfile.objects.select_related("user").filter(
        status=AgentProfile.Status.ONLINE, user__is_active=True
    )
    may_respond = Q(user__is_superuser=True) | Q(
        user__groups__permissions__codename="respond_to_conversations",
        user__groups__permissions__content_type__app_label="accounts",
    )
    profiles = profiles.filter(may_respond)
    if conversation.team_id is not None:
        profiles = profiles.filter(user__teams=conversation.team_id)
    candidates = list(profiles.distinct())
    if conversation.language:
        candidates = [p for p in candidates if not p.languages or conversation.language in p.languages]
    return candidates


def agent_choose(conversation: Conversation) -> User | None:
    """The agent who should take this conversation now, or None (it waits)."""
    strategy = conversation.team.assignment if conversation.team is not None else Team.Assignment.LEAST_LOADED
    if strategy == Team.Assignment.MANUAL:
        return None
    candidates = _candidates(conversation)
    loads = agent_open_loads(agent_ids=[p.user_id for p in candidates])
    free = [p for p in candidates if loads[p.user_id] < p.max_concurrent_chats]
    if not free:
        return None
    if strategy == Team.Assignment.ROUND_ROBIN:
        chosen = min(free, key=lambda p: (p.last_assigned_at or NEVER, p.user_id))
    else:
        chosen = min(free, key=lambda p: (loads[p.user_id], p.last_assigned_at or NEVER, p.user_id))
    return chosen.user


@transaction.atomic
def conversation_assign_auto(*, conversation: Conversation) -> Conversation | None:
    """Assign a waiting conversation to the best agent now; None when it must wait."""
    _lock_assignments()
    conversation = Conversation.objects.select_related("team").get(pk=conversation.pk)
    if not conversation_awaits_agent(conversation):
        return None
    agent = agent_choose(conversation)
    if agent is None:
        return None
    # The advisory lock serialises assignments, not takeovers or resolves: one may have landed
    # while the agent was chosen. Look again under the row lock; what a person did stands.
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if not conversation_awaits_agent(conversation):
        return None
    return conversation_assign(conversation=conversation, agent=agent, by=None)


def assignment_queue_drain() -> int:
    """Assign waiting conversations, oldest first, while agents have room; return how many."""
    waiting = list(
        Conversation.objects.filter(status=Conversation.Status.WAITING, is_snoozed=False)
        .order_by("waiting_since", "pk")
        .values_list("pk", flat=True)[:DRAIN_LIMIT]
    )
    assigned = 0
    for pk in waiting:
        conversation = Conversation.objects.filter(pk=pk).first()
        if conversation is not None and conversation_assign_auto(conversation=conversation) is not None:
            assigned += 1
    return assigned


def assignment_queue_drain_on_commit() -> None:
    from apps.conversations.tasks import assignment_queue_drain_task

    enqueue_on_commit(assignment_queue_drain_task)
