"""An agent's sends beyond plain text: attachments, and templates outside the 24-hour window."""

from __future__ import annotations

import uuid
from typing import IO, Any

from django.core.files.base import File
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.contacts.models import Contact
from apps.conversations.models import Conversation, Message
from apps.conversations.services import (
    agent_reply_recorded,
    agent_send_key,
    agent_text_translated,
    conversation_window_open,
    message_send,
)
from apps.whatsapp import messages as wa
from apps.whatsapp.attachments import Attachment, attachment_inspect
from apps.whatsapp.message_templates import (
    message_template_get_sendable,
    message_template_list_sendable,
    message_template_outgoing,
)
from apps.whatsapp.messages import MessageInvalid
from apps.whatsapp.models import Media, MessageTemplate, OutboxMessage
from apps.whatsapp.outbox import WindowClosed


def _already_sent(key: str) -> Message | None:
    """The message of an earlier request with the same client id (a retried upload stores nothing twice)."""
    row = OutboxMessage.objects.filter(idempotency_key=key).first()
    return Message.objects.filter(outbox=row).first() if row is not None else None


def _take(conversation: Conversation, agent: User) -> Conversation:
    from apps.conversations.lifecycle import conversation_takeover

    if conversation.status == Conversation.Status.ASSIGNED and conversation.assigned_agent_id == agent.pk:
        return conversation
    return conversation_takeover(conversation=conversation, agent=agent)


def _window_closed_error(conversation: Conversation) -> WindowClosed:
    expires = conversation.window.expires_at
    return WindowClosed(
        _(
            "The customer's 24-hour window is closed: WhatsApp only accepts an approved template now. "
            "Send a template instead."
        ),
        extra={"window_expires_at": expires.isoformat() if expires else None},
    )


def conversation_attachment_send(
    *,
    conversation: Conversation,
    agent: User,
    file: IO[bytes],
    filename: str,
    size: int,
    caption: str = "",
    client_id: str = "",
    translate: bool = True,
) -> Message:
    """Store an agent's file and queue it as a media message; the outbox uploads it to Meta and sends it."""
    key = agent_send_key(conversation=conversation, agent=agent, client_id=client_id)
    existing = _already_sent(key)
    if existing is not None:
        return existing
    attachment = attachment_inspect(file=file, filename=filename, size=size)
    caption = caption.strip()
    if caption and attachment.kind == "audio":
        raise MessageInvalid(
            _("WhatsApp shows no caption under audio: send the text as its own message."), extra={"field": "caption"}
        )
    if not conversation_window_open(conversation):
        raise _window_closed_error(conversation)  # before the file is stored
    # Before the transaction, as for text replies: no row locked while a provider translates.
    sent_caption, content = agent_text_translated(conversation, caption) if caption and translate else (caption, {})
    outgoing = wa.attachment(
        attachment.kind,
        caption=sent_caption,
        filename=attachment.filename if attachment.kind == "document" else "",
    )
    with transaction.atomic():
        return _attachment_store_and_send(
            conversation=_take(conversation, agent), agent=agent, file=file, attachment=attachment,
            outgoing=outgoing, content=content, key=key, preview=caption or outgoing.preview,
        )  # fmt: skip


def _attachment_store_and_send(
    *,
    conversation: Conversation,
    agent: User,
    file: IO[bytes],
    attachment: Attachment,
    outgoing: wa.Outgoing,
    content: dict[str, Any],
    key: str,
    preview: str,
) -> Message:
    media = Media(
        account=conversation.account,
        kind=attachment.kind,
        mime_type=attachment.mime_type,
        filename=attachment.filename,
        size=attachment.size,
        status=Media.Status.READY,
        downloaded_at=timezone.now(),
    )
    extension = attachment.filename.rsplit(".", 1)[-1][:10] if "." in attachment.filename else "bin"
    # Stored under the tenant's own folder (`whatsapp.models.media_upload_to`), as customers' files.
    media.file.save(f"outbound-{uuid.uuid4().hex}.{extension}", File(file), save=False)
    try:
        media.save()
        message = message_send(
            conversation=conversation,
            outgoing=outgoing,
            author_kind=Message.Author.AGENT,
            author=agent,
            idempotency_key=key,
            media=media,
        )
        if content:
            message.content = {**message.content, **content}
            message.save(update_fields=["content"])
        agent_reply_recorded(conversation=conversation, message=message, preview=preview)
    except BaseException:
        media.file.storage.delete(media.file.name)  # no stored file without its message
        raise
    return message


def _marketing_allowed(conversation: Conversation) -> bool:
    # A customer who sent STOP gets no more marketing; service templates (UTILITY,
    # AUTHENTICATION) and replies inside the 24-hour window are still theirs to receive.
    return conversation.contact.consent != Contact.Consent.OPTED_OUT


def conversation_templates(*, conversation: Conversation) -> list[MessageTemplate]:
    """The templates an agent may send in this conversation, the customer's language first."""
    language = conversation.language or conversation.contact.language
    return list(
        message_template_list_sendable(
            account=conversation.account, language=language, marketing=_marketing_allowed(conversation)
        )
    )


@transaction.atomic
def conversation_template_send(
    *, conversation: Conversation, agent: User, template_id: int, variables: list[str], client_id: str = ""
) -> Message:
    """Send an approved template (the only kind of message allowed outside the 24-hour window)."""
    key = agent_send_key(conversation=conversation, agent=agent, client_id=client_id)
    existing = _already_sent(key)
    if existing is not None:
        return existing
    template = message_template_get_sendable(account=conversation.account, template_id=template_id)
    # No MARKETING template after a STOP: `message_send` refuses it (ContactOptedOut), for
    # every sender; this transaction then undoes the takeover below.
    outgoing = message_template_outgoing(template, variables)
    conversation = _take(conversation, agent)
    message = message_send(
        conversation=conversation,
        outgoing=outgoing,
        author_kind=Message.Author.AGENT,
        author=agent,
        idempotency_key=key,
    )
    message.content = {**message.content, "template": {"id": template.pk, "name": template.name}}
    message.save(update_fields=["content"])
    agent_reply_recorded(conversation=conversation, message=message, preview=outgoing.preview)
    return message
