"""Customer satisfaction: a 1-5 rating asked on WhatsApp when a conversation is resolved or a ticket solved.

Inside the 24-hour window the question is an interactive list (five choices do not fit in
three reply buttons); outside it, only an approved template may be sent (131047), whose
quick-reply buttons carry the same payloads. Never free-form text outside the window.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import override

from apps.conversations.models import Conversation, Message
from apps.conversations.services import conversation_template_refusal, message_send
from apps.core.realtime import event_publish
from apps.tenants.selectors import organization_working_language
from apps.tickets.models import CsatSurvey, Ticket, TicketEvent
from apps.tickets.selectors import ticket_latest_for_conversation
from apps.whatsapp import messages as wa
from apps.whatsapp.payloads import InboundMessage

logger = logging.getLogger(__name__)

REPLY_ID = re.compile(r"^csat:(\d+):([1-5])$")
# Resolving, reopening and resolving again within this time asks only once.
ASK_AGAIN_AFTER = timedelta(hours=12)
LABELS = {5: "😀 Excellent", 4: "🙂 Good", 3: "😐 Okay", 2: "🙁 Poor", 1: "😞 Very poor"}


def csat_reply_id(survey_id: int, score: int) -> str:
    return f"csat:{survey_id}:{score}"


def csat_claims_inbound(inbound: InboundMessage) -> bool:
    """A rating tap answers the resolve: it must not reopen the conversation."""
    return inbound.reply is not None and REPLY_ID.match(inbound.reply.id) is not None


def _language(conversation: Conversation) -> str:
    if conversation.language:
        return conversation.language
    return organization_working_language()


@transaction.atomic
def csat_request(*, conversation: Conversation, ticket: Ticket | None = None) -> CsatSurvey | None:
    """Ask the customer to rate the conversation (or `ticket`); None when not asked (off, or asked recently)."""
    if not settings.CSAT_ENABLED:
        return None
    # Only the conversation's row: the inbound path locks the contact and its window before
    # the conversation, so locking them here too (after the conversation) could deadlock.
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("contact", "account", "window")
        .get(pk=conversation.pk)
    )
    now = timezone.now()
    if CsatSurvey.objects.filter(conversation=conversation, asked_at__gt=now - ASK_AGAIN_AFTER).exists():
        return None
    # The window of the conversation's number: the customer may have written to another one.
    window = conversation.window.expires_at
    inside = window is not None and window > now
    language = _language(conversation)
    refusal = (
        None
        if inside
        else conversation_template_refusal(
            conversation=conversation, name=settings.CSAT_TEMPLATE_NAME, language=language
        )
    )
    if refusal is not None:
        # Meta files some rating templates under MARKETING, and a customer who sent STOP gets
        # no marketing; and it may pause or disable the template: not asked (an unanswered
        # survey is better than a policy breach or a send Meta refuses).
        logger.info("no rating asked in conversation %s: %s (%s)", conversation.pk, refusal.code, refusal.extra)
        return None
    if ticket is None:
        ticket = ticket_latest_for_conversation(conversation_id=conversation.pk)
        if ticket is not None and CsatSurvey.objects.filter(ticket=ticket).exists():
            ticket = None  # the ticket was rated already: once per ticket in its figures
    survey = CsatSurvey.objects.create(
        conversation=conversation,
        ticket=ticket,
        agent_id=conversation.assigned_agent_id,
        team_id=conversation.team_id,
        channel=CsatSurvey.Channel.INTERACTIVE if inside else CsatSurvey.Channel.TEMPLATE,
        asked_at=now,
    )
    if inside:
        with override(language):
            outgoing = wa.list_message(
                _("How would you rate the help you received?"),
                _("Rate us"),
                [wa.Section("", [wa.Row(csat_reply_id(survey.pk, n), LABELS[n]) for n in (5, 4, 3, 2, 1)])],
            )
    else:
        outgoing = wa.template(
            settings.CSAT_TEMPLATE_NAME,
            language,
            button_payloads=[csat_reply_id(survey.pk, n) for n in (5, 4, 3, 2, 1)],
        )
    message = message_send(
        conversation=conversation,
        outgoing=outgoing,
        author_kind=Message.Author.SYSTEM,
        idempotency_key=f"csat:{survey.pk}",
    )
    survey.message = message
    survey.save(update_fields=["message"])
    return survey


@transaction.atomic
def csat_request_for_ticket(*, ticket_id: int) -> CsatSurvey | None:
    """Ask for a rating when a ticket is solved: once per ticket, on its latest conversation.

    Not asked when the ticket has a survey already, has no conversation, or when its
    conversation was rated recently (resolving the conversation asked already; that survey
    then counts for the ticket).
    """
    if not settings.CSAT_ENABLED:
        return None
    ticket = Ticket.objects.select_for_update().filter(pk=ticket_id).first()
    if ticket is None or ticket.status != Ticket.Status.SOLVED:
        return None
    if CsatSurvey.objects.filter(ticket=ticket).exists():
        return None
    conversation = ticket.conversations.order_by(F("last_message_at").desc(nulls_last=True), "-pk").first()
    if conversation is None:
        return None
    recent = (
        CsatSurvey.objects.filter(conversation=conversation, asked_at__gt=timezone.now() - ASK_AGAIN_AFTER)
        .order_by("-asked_at")
        .first()
    )
    if recent is not None:
        if recent.ticket_id is None:
            recent.ticket = ticket
            recent.save(update_fields=["ticket"])
        return None
    return csat_request(conversation=conversation, ticket=ticket)


@transaction.atomic
def csat_reply_record(*, message: Message) -> CsatSurvey | None:
    """Record a rating (a list or template button tap) or the comment that follows it."""
    if message.direction != Message.Direction.INBOUND:
        return None
    reply = message.content.get("reply") if isinstance(message.content, dict) else None
    match = REPLY_ID.match(str(reply.get("id", ""))) if isinstance(reply, dict) else None
    if match is not None:
        survey = (
            CsatSurvey.objects.select_for_update()
            .filter(pk=int(match.group(1)), conversation_id=message.conversation_id)
            .first()
        )
        if survey is None:
            return None
        first_answer = survey.score is None
        survey.score = int(match.group(2))
        survey.answered_at = message.sent_at
        survey.save(update_fields=["score", "answered_at"])
        if survey.ticket_id is not None:
            TicketEvent.objects.create(
                ticket_id=survey.ticket_id, kind=TicketEvent.Kind.CSAT, changes={"score": survey.score}
            )
        event_publish(
            event_type="csat.answered",
            data={"survey": survey.pk, "conversation": survey.conversation_id, "score": survey.score},
        )
        if first_answer:
            conversation = Conversation.objects.select_related("contact", "account", "window").get(
                pk=message.conversation_id
            )
            with override(_language(conversation)):
                thanks = _("Thank you for your rating! If you want to tell us more, just write it here.")
            message_send(
                conversation=conversation,
                outgoing=wa.text(thanks),
                author_kind=Message.Author.SYSTEM,
                idempotency_key=f"csat-thanks:{survey.pk}",
            )
        return survey
    if message.type != "text" or not message.text.strip():
        return None
    cutoff = message.sent_at - timedelta(seconds=settings.CSAT_COMMENT_WINDOW_SECONDS)
    survey = (
        CsatSurvey.objects.select_for_update()
        .filter(conversation_id=message.conversation_id, score__isnull=False, comment="", answered_at__gte=cutoff)
        .filter(answered_at__lte=message.sent_at)
        .order_by("-answered_at")
        .first()
    )
    if survey is None:
        return None
    survey.comment = message.text.strip()[:2000]
    survey.save(update_fields=["comment"])
    return survey
