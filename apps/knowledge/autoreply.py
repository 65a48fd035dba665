"""The bot's reply of last resort: answer from the knowledge base with a citation, or hand off.

Every tenant's normal path is its built-in default flow (`apps.flows.builtin`), which does
the same with nodes an admin can edit. This module is what remains when no flow answers:
- no active flow claims the message (the admin deactivated or deleted the default flow);
- a flow run failed on the message (`apps.flows.services` calls `bot_reply`), so the
  customer still gets an answer or a person;
- an analysis rule handed the conversation off (the customer asked for a person): flows never
  run for a conversation people own, and this sends the hand-off notice.

Registered with `apps.conversations.hooks` (runs after each inbound message is analysed).
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import translation
from django.utils.translation import gettext as _

from apps.contacts.keywords import consent_keyword
from apps.conversations.hooks import message_claimed_by_automation
from apps.conversations.lifecycle import conversation_handoff
from apps.conversations.models import Conversation, ConversationEvent, Message
from apps.conversations.services import message_send
from apps.knowledge.answers import knowledge_answer
from apps.whatsapp import messages as wa
from apps.whatsapp.outbox import WindowClosed

logger = logging.getLogger(__name__)

MAX_REPLY = 4000  # WhatsApp's text limit is 4,096


def _bot_say(conversation: Conversation, text: str, key: str) -> None:
    try:
        message_send(
            conversation=conversation,
            outgoing=wa.text(text[:MAX_REPLY]),
            author_kind=Message.Author.BOT,
            idempotency_key=key,
        )
    except WindowClosed:
        logger.warning("bot reply %s not sent: the customer's window is closed", key)


def _with_sources(text: str, titles: list[str]) -> str:
    if not titles:
        return text
    return f"{text}\n\n" + _("Source: %(sources)s") % {"sources": "; ".join(dict.fromkeys(titles))}


def conversation_autoreply(message: Message) -> None:
    """Answer an analysed customer message if the bot owns the conversation (idempotent)."""
    if message.direction != Message.Direction.INBOUND:
        return
    if message.type == "text" and consent_keyword(message.text) is not None:
        return  # STOP / START: the consent confirmation is the answer
    if message_claimed_by_automation(message):
        return  # a flow answers this message
    bot_reply(message)


def bot_reply(message: Message) -> None:
    """Greet, answer from the knowledge base or say so and hand off; idempotent (keyed by message)."""
    conversation = Conversation.objects.select_related("contact", "account").get(pk=message.conversation_id)
    # Reply in the customer's language where the bot's own words are concerned.
    with translation.override(conversation.language or None):
        if conversation.status == Conversation.Status.WAITING:
            handed_off_now = conversation.events.filter(
                kind=ConversationEvent.Kind.HANDOFF, actor__isnull=True, created__gte=message.created
            ).exists()
            # "bot:<id>" keys the bot's reply to message <id>, "bot:<id>:<n>" a flow's replies to it.
            already_answered = Message.objects.filter(
                Q(outbox__idempotency_key=f"bot:{message.pk}")
                | Q(outbox__idempotency_key__startswith=f"bot:{message.pk}:")
            ).exists()
            if handed_off_now and not already_answered:
                _bot_say(
                    conversation,
                    _("Thank you. I am connecting you with a member of our team; they will reply here shortly."),
                    f"bot:handoff:{message.pk}",
                )
            return
        if conversation.status != Conversation.Status.BOT or not message.text.strip():
            return
        newer = conversation.messages.filter(direction=Message.Direction.INBOUND, sent_at__gt=message.sent_at)
        if newer.exists():
            return  # the customer wrote again: answer the latest message, not each one
        if message.intent == "greeting" and len(message.text.split()) <= 4:
            name = conversation.contact.profile_name.split(" ")[0] if conversation.contact.profile_name else ""
            greeting = _("Hello %(name)s! How can we help you today?") % {"name": name}
            _bot_say(conversation, greeting.replace("  ", " ").replace(" !", "!"), f"bot:{message.pk}")
            return
        answer = knowledge_answer(question=message.text, conversation=conversation)
        with transaction.atomic():
            # The answer took a while (retrieval, a provider) and no lock was held meanwhile, so an
            # agent may have taken over: look again under the row lock, as flows do.
            conversation = (
                Conversation.objects.select_for_update(of=("self",))
                .select_related("contact", "account")
                .get(pk=conversation.pk)
            )
            if conversation.status != Conversation.Status.BOT:
                return
            if answer.handoff:
                _bot_say(conversation, answer.text, f"bot:{message.pk}")
                conversation_handoff(conversation=conversation, reason=_("no answer in the knowledge base"))
                return
            sources = [c.title for c in answer.citations[:1]]
            _bot_say(conversation, _with_sources(answer.text, sources), f"bot:{message.pk}")
