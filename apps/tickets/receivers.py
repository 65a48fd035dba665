"""The tickets app's answers to conversation events (registered in TicketsConfig.ready).

They run after the conversation's transaction commits (apps.conversations.hooks): a
failure here is logged there and never undoes the conversation's change.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils.translation import gettext as _

from apps.conversations.models import Conversation, Message
from apps.core.queue import enqueue_on_commit
from apps.tickets.models import Ticket
from apps.tickets.selectors import ticket_active_for_conversation
from apps.tickets.services.csat import csat_claims_inbound, csat_reply_record, csat_request
from apps.tickets.services.rules import escalation_rules_apply
from apps.tickets.services.tickets import (
    ticket_agent_replied,
    ticket_create_from_conversation,
    ticket_customer_wrote,
    ticket_update,
)
from apps.tickets.tasks import ticket_create_for_handoff_task

logger = logging.getLogger(__name__)

__all__ = [
    "agent_reply_received",
    "conversation_assigned_received",
    "conversation_resolved_received",
    "csat_claims_inbound",
    "handoff_received",
    "message_analysed_received",
]


def handoff_received(conversation: Conversation, reason: str) -> None:
    fresh = Conversation.objects.select_related("contact").get(pk=conversation.pk)
    try:
        ticket_create_from_conversation(conversation=fresh, by=None, source=Ticket.Source.HANDOFF, reason=reason)
    except Exception:
        # The hand-off stands; its ticket is retried by a task, and the Beat sweep
        # (tickets_handoff_sweep_task) finds it even if that task is lost too.
        logger.exception("the ticket of the hand-off of conversation %s failed; retrying", conversation.pk)
        enqueue_on_commit(
            ticket_create_for_handoff_task,
            conversation.pk,
            reason,
            countdown=settings.TICKET_HANDOFF_RETRY_SECONDS,
        )


def message_analysed_received(message: Message) -> None:
    if csat_reply_record(message=message) is not None:
        return  # a rating or its comment: not a support request
    escalation_rules_apply(message=message)
    ticket = ticket_active_for_conversation(conversation_id=message.conversation_id)
    if ticket is not None:
        ticket_customer_wrote(ticket=ticket, message=message)


def agent_reply_received(message: Message) -> None:
    ticket = ticket_active_for_conversation(conversation_id=message.conversation_id)
    if ticket is not None:
        ticket_agent_replied(ticket=ticket, message=message)


def conversation_assigned_received(conversation: Conversation, previous_agent_id: int | None) -> None:
    """The ticket follows its conversation to the agent who now has it.

    Only while nobody chose otherwise: a ticket with no assignee, or still with the
    conversation's previous agent, moves; one a manager gave to someone else stays.
    """
    ticket = ticket_active_for_conversation(conversation_id=conversation.pk)
    fresh = Conversation.objects.select_related("assigned_agent").get(pk=conversation.pk)
    agent = fresh.assigned_agent
    if ticket is None or agent is None or ticket.assignee_id == agent.pk:
        return
    if ticket.assignee_id is not None and ticket.assignee_id != previous_agent_id:
        return
    ticket_update(ticket=ticket, by=None, assignee=agent, note=_("The conversation went to this agent."))


def conversation_resolved_received(conversation: Conversation) -> None:
    csat_request(conversation=conversation)
