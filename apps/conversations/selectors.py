"""Reads of conversations, with the one visibility rule the API, the websocket and pages share.

- Admins and Support Managers (`view_all_conversations`) see every conversation.
- Agents (`view_assigned_conversations`) see the ones assigned to them, and the unassigned
  ones of their teams' queues (a conversation without a team is in everyone's queue).
- Everyone else (Knowledge Editors) sees none.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Avg, Count, OuterRef, Q, QuerySet, Subquery

from apps.accounts.models import User
from apps.accounts.selectors import user_has_capability
from apps.conversations.exceptions import ConversationNotFound
from apps.conversations.models import CannedResponse, Conversation, ConversationEvent, Message

ACTIVE_STATUSES = (Conversation.Status.WAITING, Conversation.Status.ASSIGNED)


@dataclass(frozen=True)
class Viewer:
    """What one person may see, loaded once (a socket keeps it for a minute)."""

    user_id: int
    sees_all: bool
    sees_assigned: bool
    team_ids: frozenset[int]


def viewer_for(*, user: User) -> Viewer:
    sees_all = user_has_capability(user=user, capability="view_all_conversations")
    sees_assigned = user_has_capability(user=user, capability="view_assigned_conversations")
    teams = frozenset(user.teams.values_list("pk", flat=True)) if sees_assigned and not sees_all else frozenset()
    return Viewer(user_id=user.pk, sees_all=sees_all, sees_assigned=sees_assigned, team_ids=teams)


def viewer_can_see(viewer: Viewer, *, assigned_agent_id: int | None, team_id: int | None) -> bool:
    """The visibility rule on one conversation's routing (for events); same rule as the Q below."""
    if viewer.sees_all:
        return True
    if not viewer.sees_assigned:
        return False
    if assigned_agent_id == viewer.user_id:
        return True
    return assigned_agent_id is None and (team_id is None or team_id in viewer.team_ids)


def conversation_visibility_q(*, user: User) -> Q | None:
    """The filter of the conversations a user may see; None means all of them."""
    viewer = viewer_for(user=user)
    if viewer.sees_all:
        return None
    if not viewer.sees_assigned:
        return Q(pk__in=[])
    unassigned = Q(assigned_agent__isnull=True) & (Q(team__isnull=True) | Q(team_id__in=viewer.team_ids))
    return Q(assigned_agent_id=viewer.user_id) | unassigned


def conversation_routing(conversation: Conversation) -> dict[str, int | None]:
    """What an event about a conversation carries so sockets can apply `viewer_can_see`."""
    return {
        "conversation": conversation.pk,
        "assigned_agent": conversation.assigned_agent_id,
        "team": conversation.team_id,
    }


def outbox_message_routing(outbox_id: int) -> dict[str, int | None] | None:
    """The routing of the conversation an outgoing send belongs to (None: not a conversation's)."""
    message = (
        Message.objects.select_related("conversation")
        .only("conversation__id", "conversation__assigned_agent_id", "conversation__team_id")
        .filter(outbox_id=outbox_id)
        .first()
    )
    return conversation_routing(message.conversation) if message is not None else None


def conversation_list_for_user(
    *,
    user: User,
    status: str | None = None,
    agent_id: int | None = None,
    mine: bool = False,
    unassigned: bool = False,
    team_id: int | None = None,
    sentiment: str | None = None,
    language: str | None = None,
    search: str | None = None,
) -> QuerySet[Conversation]:
    """The conversations a user may see, filtered, newest activity first."""
    conversations = Conversation.objects.select_related("contact", "assigned_agent", "team", "account", "window")
    visible = conversation_visibility_q(user=user)
    if visible is not None:
        conversations = conversations.filter(visible)
    if status:
        conversations = conversations.filter(status=status)
    if agent_id is not None:
        conversations = conversations.filter(assigned_agent_id=agent_id)
    if mine:
        conversations = conversations.filter(assigned_agent=user)
    if unassigned:
        conversations = conversations.filter(assigned_agent__isnull=True, status=Conversation.Status.WAITING)
    if team_id is not None:
        conversations = conversations.filter(team_id=team_id)
    if language:
        conversations = conversations.filter(language=language)
    if sentiment in ("negative", "neutral", "positive"):
        conversations = conversations.filter(_last_sentiment_q(sentiment))
    if search:
        conversations = conversations.filter(
            Q(contact__profile_name__icontains=search)
            | Q(contact__wa_id__contains=search)
            | Q(last_message_preview__icontains=search)
        )
    return conversations.order_by("-last_message_at", "-pk")


def _last_sentiment_q(label: str) -> Q:
    """Conversations whose customer messages lean negative / neutral / positive on average."""
    average = (
        Message.objects.filter(
            conversation=OuterRef("pk"), direction=Message.Direction.INBOUND, sentiment__isnull=False
        )
        .values("conversation")
        .annotate(value=Avg("sentiment"))
        .values("value")
    )
    pks = Conversation.objects.annotate(avg_sentiment=Subquery(average)).filter(
        **{
            "negative": {"avg_sentiment__lt": -0.25},
            "neutral": {"avg_sentiment__gte": -0.25, "avg_sentiment__lte": 0.25},
            "positive": {"avg_sentiment__gt": 0.25},
        }[label]
    )
    return Q(pk__in=pks.values("pk"))


def conversation_get_for_user(*, user: User, conversation_id: int) -> Conversation:
    """One conversation the user may see, or ConversationNotFound (never a hint that it exists)."""
    conversation = conversation_list_for_user(user=user).filter(pk=conversation_id).first()
    if conversation is None:
        raise ConversationNotFound("No such conversation.", extra={"conversation": conversation_id})
    return conversation


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    # The outbox row's number: a pending send to a switched-off number shows as held.
    return conversation.messages.select_related("outbox__account", "media", "author").order_by("sent_at", "id")


def conversation_events(*, conversation: Conversation) -> QuerySet[ConversationEvent]:
    return conversation.events.select_related("actor").order_by("created", "id")


def agent_open_loads(*, agent_ids: list[int]) -> dict[int, int]:
    """How many conversations each agent holds now (assigned, not snoozed)."""
    rows = (
        Conversation.objects.filter(assigned_agent_id__in=agent_ids, status=Conversation.Status.ASSIGNED)
        .values("assigned_agent_id")
        .annotate(load=Count("pk"))
    )
    loads = {agent_id: 0 for agent_id in agent_ids}
    loads.update({row["assigned_agent_id"]: row["load"] for row in rows})
    return loads


def contact_history_for_user(*, user: User, contact_id: int) -> QuerySet[Conversation]:
    """A customer's conversations, newest first, for someone who may see one of them now.

    An agent who serves a customer sees that customer's past conversations, whoever handled them.
    """
    if not user_has_capability(user=user, capability="view_customer_history"):
        return Conversation.objects.none()
    if not conversation_list_for_user(user=user).filter(contact_id=contact_id).exists():
        return Conversation.objects.none()
    return (
        Conversation.objects.select_related("contact", "assigned_agent", "team", "account", "window")
        .filter(contact_id=contact_id)
        .order_by("-last_message_at", "-pk")
    )


def canned_response_list(*, query: str = "") -> QuerySet[CannedResponse]:
    responses = CannedResponse.objects.filter(is_active=True)
    if query:
        responses = responses.filter(Q(shortcut__istartswith=query) | Q(title__icontains=query))
    return responses.order_by("shortcut")


def message_media_for_user(*, user: User, message_id: int) -> Message:
    """A message with stored media, in a conversation the user may see; ConversationNotFound otherwise."""
    visible = conversation_list_for_user(user=user).values("pk")
    message = (
        Message.objects.select_related("media")
        .filter(pk=message_id, conversation__in=visible, media__isnull=False, media__status="ready")
        .first()
    )
    if message is None:
        raise ConversationNotFound("No such media.", extra={"message": message_id})
    return message
