"""Escalation rules: evaluated in order on every analysed inbound message; every firing is logged."""

from __future__ import annotations

import logging
import operator
import re
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction

from apps.contacts.models import Contact
from apps.conversations.lifecycle import conversation_handoff, conversation_update
from apps.conversations.models import Conversation, Message
from apps.tickets.models import EscalationRule, EscalationRuleFiring, Ticket, TicketEvent
from apps.tickets.selectors import ticket_active_for_conversation
from apps.tickets.services.tickets import ticket_create_from_conversation, ticket_update

logger = logging.getLogger(__name__)

Trigger = EscalationRule.Trigger
Action = EscalationRule.Action
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
}
# Ticket priority → conversation priority.
CONVERSATION_PRIORITY = {"low": "low", "medium": "normal", "high": "high", "urgent": "urgent"}


def _number(value: Any) -> float | None:
    try:
        return float(str(value).replace(",", "").strip())
    except (TypeError, ValueError):
        return None


def rule_matches(*, rule: EscalationRule, message: Message, contact: Contact) -> bool:
    """Whether the rule's trigger holds for this message (pure: reads, never writes)."""
    text = message.text or ""
    if rule.trigger == Trigger.SENTIMENT_BELOW:
        return (
            message.sentiment is not None
            and rule.sentiment_below is not None
            and (message.sentiment < rule.sentiment_below)
        )
    if rule.trigger == Trigger.KEYWORD:
        if rule.is_regex:
            try:
                return re.search(rule.pattern, text, re.IGNORECASE) is not None
            except re.error:
                logger.warning("escalation rule %s has an invalid pattern %r", rule.pk, rule.pattern)
                return False
        folded = text.casefold()
        return any(word.strip().casefold() in folded for word in rule.pattern.split(",") if word.strip())
    if rule.trigger == Trigger.INTENT:
        return bool(message.intent) and message.intent == rule.intent
    if rule.trigger == Trigger.CUSTOMER_VALUE:
        value = _number(contact.custom_fields.get(rule.field)) if isinstance(contact.custom_fields, dict) else None
        compare = COMPARISONS.get(rule.comparison)
        return value is not None and rule.value is not None and compare is not None and compare(value, rule.value)
    return False


def _rule_act(rule: EscalationRule, conversation: Conversation) -> tuple[dict[str, Any], Ticket | None]:
    ticket = ticket_active_for_conversation(conversation_id=conversation.pk)
    result: dict[str, Any] = {"action": rule.action}
    if rule.action == Action.ESCALATE:
        reason = f"escalation rule: {rule.name}"
        if conversation.status in (Conversation.Status.BOT, Conversation.Status.RESOLVED):
            conversation = conversation_handoff(conversation=conversation, reason=reason)
        ticket = ticket_create_from_conversation(
            conversation=conversation, by=None, source=Ticket.Source.RULE, reason=reason
        )
        result.update(conversation_status=conversation.status, ticket=ticket.pk)
    elif rule.action == Action.TAG:
        conversation_update(conversation=conversation, by=None, tags=[*conversation.tags, rule.tag])
        if ticket is not None:
            ticket_update(ticket=ticket, by=None, tags=[*ticket.tags, rule.tag], note=rule.name)
        result["tag"] = rule.tag
    elif rule.action == Action.ROUTE:
        conversation_update(conversation=conversation, by=None, team=rule.team)
        if ticket is not None:
            ticket_update(ticket=ticket, by=None, team=rule.team, note=rule.name)
        result["team"] = rule.team_id
    elif rule.action == Action.SET_PRIORITY:
        conversation_update(conversation=conversation, by=None, priority=CONVERSATION_PRIORITY[rule.priority])
        if ticket is not None:
            ticket_update(ticket=ticket, by=None, priority=rule.priority, note=rule.name)
        result["priority"] = rule.priority
    return result, ticket


def escalation_rules_apply(*, message: Message) -> list[EscalationRuleFiring]:
    """Run the tenant's active rules in order on an analysed inbound message."""
    if message.direction != Message.Direction.INBOUND:
        return []
    firings: list[EscalationRuleFiring] = []
    rules = list(EscalationRule.objects.filter(is_active=True).select_related("team").order_by("position", "id"))
    if not rules:
        return firings
    contact = Contact.objects.get(pk=message.conversation.contact_id)
    for rule in rules:
        if not rule_matches(rule=rule, message=message, contact=contact):
            continue
        if EscalationRuleFiring.objects.filter(rule=rule, message=message).exists():
            if rule.stop_processing:  # a re-analysed message: same outcome, nothing done twice
                break
            continue
        try:
            with transaction.atomic():
                conversation = Conversation.objects.get(pk=message.conversation_id)
                result, ticket = _rule_act(rule, conversation)
                firing = EscalationRuleFiring.objects.create(
                    rule=rule, message=message, conversation=conversation, ticket=ticket, result=result
                )
                if ticket is not None:
                    TicketEvent.objects.create(
                        ticket=ticket, kind=TicketEvent.Kind.RULE, changes={"rule": rule.pk, **result}, note=rule.name
                    )
        except IntegrityError:
            continue  # fired concurrently on the same message
        firings.append(firing)
        if rule.stop_processing:
            break
    return firings
