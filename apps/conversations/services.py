"""The inbound pipeline's recording step, and sending from a conversation."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.contacts.keywords import CONFIRMATIONS, consent_keyword
from apps.contacts.models import Contact, ServiceWindow
from apps.contacts.services import contact_consent_set, contact_seen, service_window_extend
from apps.conversations import hooks
from apps.conversations.exceptions import ContactOptedOut, TemplateNotApproved
from apps.conversations.lifecycle import conversation_reopen_on_inbound
from apps.conversations.selectors import conversation_routing
from apps.conversations.tasks import message_analyse_task
from apps.core.exceptions import ConflictError
from apps.core.queue import enqueue_on_commit
from apps.core.realtime import event_publish
from apps.tenants.models import WhatsAppAccount
from apps.tenants.selectors import organization_working_language
from apps.whatsapp import messages as wa
from apps.whatsapp.media import media_register
from apps.whatsapp.message_templates import message_template_catalogue
from apps.whatsapp.messages import MessageInvalid
from apps.whatsapp.models import Media, MessageTemplate
from apps.whatsapp.outbox import WindowClosed, outbox_enqueue
from apps.whatsapp.payloads import InboundMessage

from .models import Conversation, Message

logger = logging.getLogger(__name__)

# Message.type of an internal note: kept in the thread, never sent.
NOTE = "note"


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items() if item not in (None, "", [], {})}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _content(message: InboundMessage) -> dict[str, Any]:
    data = dataclasses.asdict(message)
    for key in ("wamid", "from_wa_id", "timestamp", "type", "profile_name", "text", "context_wamid"):
        data.pop(key, None)
    return dict(_json_safe(data))


def conversation_for_inbound(*, window: ServiceWindow, inbound: InboundMessage | None = None) -> Conversation:
    """The contact's open conversation on the window's number (a resolved one reopens, a snooze ends), or a new one.

    A message that a higher app claims through `hooks.keeps_resolved` (a satisfaction
    rating) does not reopen it.
    """
    contact, account = window.contact, window.account
    conversation = (
        Conversation.objects.select_for_update()
        .filter(contact=contact, account=account)
        .exclude(status=Conversation.Status.CLOSED)
        .first()
    )
    if conversation is None:
        # A new thread on a number keeps the window an earlier, closed one left open.
        return Conversation.objects.create(contact=contact, account=account, window=window, language=contact.language)
    # The instance just extended, so that a send from this conversation sees the new end.
    conversation.window = window
    if inbound is None or not any(claims(inbound) for claims in hooks.keeps_resolved):
        conversation_reopen_on_inbound(conversation=conversation)
    return conversation


def message_created_publish(
    *, conversation: Conversation, message: Message, direction: str, preview: str, author: str = ""
) -> None:
    """Tell the sockets that may see the conversation about a new message (after commit)."""
    data: dict[str, Any] = {
        **conversation_routing(conversation),
        "message": message.pk,
        "direction": direction,
        "preview": preview[:200],
    }
    if author:
        data["author"] = author
    event_publish(event_type="message.created", data=data)


def reaction_record(*, account: WhatsAppAccount, inbound: InboundMessage) -> Message | None:
    """Attach the customer's reaction to the message it reacts to; return that message, or None.

    A reaction is not a message of its own: it never reopens a conversation, counts as
    unread, replaces the preview, moves the 24-hour window nor reaches the bot. Meta's
    documentation does not say that it opens the window, and a free-form reply WhatsApp
    refuses is worse than a template it would have let through.
    """
    reaction = inbound.reaction
    if reaction is None:
        return None
    target = (
        Message.objects.select_for_update(of=("self",))
        .filter(conversation__account=account, conversation__contact__wa_id=inbound.from_wa_id)
        .filter(Q(wamid=reaction.message_wamid) | Q(outbox__wamid=reaction.message_wamid))
        .select_related("conversation")
        .first()
    )
    if target is None:  # a message sent outside Imaradesk, or pruned: the event stays in the console
        logger.info("reaction %s to unknown message %s ignored", inbound.wamid, reaction.message_wamid)
        return None
    if target.customer_reaction_at is not None and inbound.timestamp < target.customer_reaction_at:
        return target  # an older reaction delivered late: the newer one stands
    target.customer_reaction = reaction.emoji  # "" when the customer removed it
    target.customer_reaction_at = inbound.timestamp
    target.save(update_fields=["customer_reaction", "customer_reaction_at"])
    event_publish(
        event_type="message.reaction",
        data={**conversation_routing(target.conversation), "message": target.pk, "emoji": target.customer_reaction},
    )
    return target


@transaction.atomic
def inbound_message_record(*, account: WhatsAppAccount, inbound: InboundMessage) -> Message | None:
    """Store an inbound message with its contact and conversation; None if it was stored before.

    A reaction only changes the message it reacts to (`reaction_record`): None.
    """
    if inbound.type == "reaction" and inbound.reaction is not None:
        reaction_record(account=account, inbound=inbound)
        return None
    if Message.objects.filter(wamid=inbound.wamid).exists():
        return None  # a replay or a duplicate delivery: nothing to do twice
    contact = contact_seen(wa_id=inbound.from_wa_id, profile_name=inbound.profile_name, at=inbound.timestamp)
    window = service_window_extend(contact=contact, account=account, at=inbound.timestamp)
    conversation = conversation_for_inbound(window=window, inbound=inbound)
    media = media_register(account=account, kind=inbound.type, ref=inbound.media) if inbound.media else None
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.INBOUND,
        author_kind=Message.Author.CUSTOMER,
        type=inbound.type,
        text=inbound.text
        or (inbound.media.caption if inbound.media else "")
        or (inbound.reply.title if inbound.reply else ""),
        content=_content(inbound),
        media=media,
        wamid=inbound.wamid,
        reply_to_wamid=inbound.context_wamid,
        sent_at=inbound.timestamp,
    )
    if conversation.last_message_at is None or inbound.timestamp >= conversation.last_message_at:
        conversation.last_message_at = inbound.timestamp
        conversation.last_message_preview = inbound.preview[:200]
    conversation.unread_count += 1
    conversation.save()

    keyword = consent_keyword(inbound.text) if inbound.type == "text" else None
    if keyword is not None:
        action, language = keyword
        contact_consent_set(
            contact=contact, action=action, source="keyword", evidence=f"{inbound.wamid}: {inbound.text}"
        )
        try:
            message_send(
                conversation=conversation,
                outgoing=wa.text(CONFIRMATIONS[action][language]),
                author_kind=Message.Author.SYSTEM,
                idempotency_key=f"consent:{inbound.wamid}",
            )
        except WindowClosed:
            # A keyword recorded late (an orphan replayed days after): the consent change and
            # the message stand; WhatsApp would refuse a free-form confirmation now.
            logger.info("consent %s from %s recorded without confirmation: window closed", action, inbound.wamid)
    # First the inbox (agents are waiting), then the analysis.
    message_created_publish(conversation=conversation, message=message, direction="in", preview=message.text)
    enqueue_on_commit(message_analyse_task, message.pk)
    return message


def inbound_handle(account: WhatsAppAccount, inbound: InboundMessage) -> None:
    """The handler registered with the WhatsApp transport (see ConversationsConfig.ready)."""
    inbound_message_record(account=account, inbound=inbound)


def conversation_template_refusal(*, conversation: Conversation, name: str, language: str) -> ConflictError | None:
    """Why this template may not go to the conversation's customer now; None when it may.

    WhatsApp sends only templates it approved: one it paused (low quality), disabled or
    rejected fails there (132015, 132001), and its status webhooks tell the catalogue at once,
    so the send stops here with the reason. Consent is marketing consent: after a STOP no
    MARKETING template goes, service ones (UTILITY, AUTHENTICATION) do. A template the
    number's catalogue does not know (never fetched) goes: WhatsApp has the last word.
    """
    copies = message_template_catalogue(account=conversation.account, name=name, language=language)
    statuses = sorted({status for _category, status in copies})
    if statuses and MessageTemplate.Status.APPROVED not in statuses:
        return TemplateNotApproved(
            _(
                "WhatsApp does not allow the template “%(name)s” (%(language)s) to be sent now: it is "
                "%(status)s in WhatsApp Manager. Send another template, or wait until it is approved again."
            )
            % {
                "name": name,
                "language": language,
                "status": ", ".join(str(MessageTemplate.Status(status).label) for status in statuses),
            },
            extra={"template": name, "language": language, "status": statuses},
        )
    if MessageTemplate.Category.MARKETING in {category for category, _status in copies} and (
        # Read now, not from the caller's copy of the contact: a flow's walk loaded it seconds
        # ago, and a STOP recorded since then must count.
        Contact.objects.filter(pk=conversation.contact_id, consent=Contact.Consent.OPTED_OUT).exists()
    ):
        return ContactOptedOut(
            _(
                "This customer opted out of marketing messages (they sent STOP): send a utility template "
                "instead, or wait until they opt in again."
            ),
            extra={"template": name, "language": language, "category": MessageTemplate.Category.MARKETING.value},
        )
    return None


@transaction.atomic
def message_send(
    *,
    conversation: Conversation,
    outgoing: wa.Outgoing,
    author_kind: str,
    idempotency_key: str,
    author: User | None = None,
    media: Media | None = None,
) -> Message:
    """Send a message in a conversation: an outbox row and the message that shows it.

    A template WhatsApp has not approved (`TemplateNotApproved`), or a MARKETING one to a
    customer who opted out (`ContactOptedOut`), is refused, whoever sends it: an agent, a
    flow, a survey (`conversation_template_refusal`).
    """
    template = outgoing.template_named
    if template is not None:
        name, language = template
        refusal = conversation_template_refusal(conversation=conversation, name=name, language=language)
        if refusal is not None:
            raise refusal
    contact = conversation.contact
    row = outbox_enqueue(
        account=conversation.account,
        to_wa_id=contact.wa_id,
        message=outgoing,
        idempotency_key=idempotency_key,
        # The window of the conversation's number: another number's says nothing here.
        window_expires_at=conversation.window.expires_at,
        media=media,
    )
    existing = Message.objects.filter(outbox=row).first()
    if existing is not None:
        return existing
    now = timezone.now()
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        author_kind=author_kind,
        author=author,
        type=outgoing.kind if outgoing.kind != "media" else str(outgoing.payload.get("type", "media")),
        text=outgoing.preview,
        content={"payload": outgoing.payload},
        outbox=row,
        media=media,
        sent_at=now,
    )
    Conversation.objects.filter(pk=conversation.pk).update(
        last_message_at=now, last_message_preview=outgoing.preview[:200]
    )
    if author_kind != Message.Author.AGENT:  # an agent's reply is announced by agent_reply_recorded
        message_created_publish(
            conversation=conversation, message=message, direction="out", preview=outgoing.preview, author=author_kind
        )
    return message


def agent_text_translated(conversation: Conversation, text: str) -> tuple[str, dict[str, Any]]:
    """The agent's reply in the customer's language when a provider can translate it."""
    from apps.ai.router import translate

    working = organization_working_language()
    if not conversation.language or conversation.language == working:
        return text, {}
    result = translate(text, working, conversation.language)
    if not result.translated:
        return text, {"translation": "untranslated"}
    return result.text, {"original": text, "original_language": working, "translated_by": result.provider}


def conversation_window_open(conversation: Conversation) -> bool:
    """Whether free-form messages may go to the customer from this conversation's number now."""
    return conversation.window.is_open


def agent_send_key(*, conversation: Conversation, agent: User, client_id: str) -> str:
    """The outbox key of an agent's send: a retry with the same client id sends once.

    Scoped to the conversation: an integrator may number its messages per conversation, and
    the same client id elsewhere is a different message, not a retry.
    """
    return f"agent:{agent.pk}:c{conversation.pk}:{client_id or uuid.uuid4().hex}"


def conversation_reply(
    *, conversation: Conversation, agent: User, text: str, client_id: str = "", translate: bool = True
) -> Message:
    """An agent answers the customer. Replying to the bot's or the queue's conversation takes it over."""
    text = text.strip()
    if not text:
        raise MessageInvalid(_("Write a message first."), extra={"field": "text"})
    # The translation may wait on a provider (seconds, or its timeouts): before the
    # transaction, so that no conversation row stays locked meanwhile and the usage it meters
    # is kept even if the send is then refused. With the window closed the send will be
    # refused (a template is needed): no translation to pay for.
    translate = translate and conversation_window_open(conversation)
    outgoing_text, content = agent_text_translated(conversation, text) if translate else (text, {})
    return _reply_send(
        conversation=conversation, agent=agent, text=text, outgoing_text=outgoing_text, content=content,
        client_id=client_id,
    )  # fmt: skip


@transaction.atomic
def _reply_send(
    *, conversation: Conversation, agent: User, text: str, outgoing_text: str, content: dict[str, Any], client_id: str
) -> Message:
    from apps.conversations.lifecycle import conversation_takeover

    if not (conversation.status == Conversation.Status.ASSIGNED and conversation.assigned_agent_id == agent.pk):
        conversation = conversation_takeover(conversation=conversation, agent=agent)
    message = message_send(
        conversation=conversation,
        outgoing=wa.text(outgoing_text),
        author_kind=Message.Author.AGENT,
        author=agent,
        idempotency_key=agent_send_key(conversation=conversation, agent=agent, client_id=client_id),
    )
    if content and message.content.get("original") is None:
        message.content = {**message.content, **content}
        message.save(update_fields=["content"])
    agent_reply_recorded(conversation=conversation, message=message, preview=text)
    return message


def agent_reply_recorded(*, conversation: Conversation, message: Message, preview: str) -> None:
    """What follows every agent reply: the thread is read, higher apps hear of it, the inboxes update."""
    Conversation.objects.filter(pk=conversation.pk).update(unread_count=0)
    hooks.hooks_fire(hooks.on_agent_reply, message)
    message_created_publish(conversation=conversation, message=message, direction="out", preview=preview)


@transaction.atomic
def conversation_note_add(*, conversation: Conversation, author: User, text: str) -> Message:
    """An internal note for colleagues: stored in the thread, never sent to the customer."""
    text = text.strip()
    if not text:
        raise MessageInvalid(_("Write a note first."), extra={"field": "text"})
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        author_kind=Message.Author.AGENT,
        author=author,
        type=NOTE,
        text=text,
        sent_at=timezone.now(),
    )
    message_created_publish(conversation=conversation, message=message, direction="note", preview=text)
    return message
