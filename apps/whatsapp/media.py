"""Customer media: media id -> Graph GET /{media-id} -> short-lived URL -> download into storage."""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone

from apps.core.queue import enqueue_on_commit
from apps.tenants.models import WhatsAppAccount
from apps.whatsapp.client import GraphApiError, MediaTooLarge, WhatsAppClient
from apps.whatsapp.models import Media
from apps.whatsapp.payloads import MediaRef

logger = logging.getLogger(__name__)


def media_register(*, account: WhatsAppAccount, kind: str, ref: MediaRef) -> Media:
    """Record a media file a message refers to and schedule its download (idempotent)."""
    media, created = Media.objects.get_or_create(
        media_id=ref.media_id,
        defaults={
            "account": account,
            "kind": kind,
            "mime_type": ref.mime_type,
            "sha256": ref.sha256,
            "filename": ref.filename,
        },
    )
    if created and account.transport == WhatsAppAccount.Transport.CLOUD:
        from apps.whatsapp.tasks import media_download_task

        enqueue_on_commit(media_download_task, media.pk)
    elif created:
        media.status = Media.Status.FAILED
        media.error = "Sandbox numbers have no media to download."
        media.save(update_fields=["status", "error"])
    return media


def media_download(*, media_id: int, client: WhatsAppClient | None = None) -> Media:
    """Fetch the file into storage, within the size limit for its type. Retryable errors propagate."""
    media = Media.objects.select_related("account").get(pk=media_id)
    if media.status == Media.Status.READY or not media.media_id:
        return media  # stored already, or an agent's file (which we upload, never download)
    account = media.account
    client = client or WhatsAppClient(phone_number_id=account.phone_number_id, access_token=account.access_token)
    limit = settings.WHATSAPP_MEDIA_MAX_BYTES.get(media.kind, 16 * 1024 * 1024)
    try:
        info = client.media_info(media.media_id)
        if info.file_size is not None and info.file_size > limit:
            raise MediaTooLarge(limit)
        content = client.media_download(info.url, max_bytes=limit)
    except MediaTooLarge as exc:
        media.status = Media.Status.TOO_LARGE
        media.error = str(exc)
        media.save(update_fields=["status", "error"])
        return media
    except GraphApiError as exc:
        if exc.retryable:
            raise
        media.status = Media.Status.FAILED
        media.error = str(exc)[:2000]
        media.save(update_fields=["status", "error"])
        return media
    digest = hashlib.sha256(content).hexdigest()
    mime = info.mime_type or media.mime_type
    extension = mimetypes.guess_extension(mime.split(";")[0].strip()) or ".bin"
    media.file.save(f"{uuid.uuid4().hex}{extension}", ContentFile(content), save=False)
    media.size = len(content)
    media.mime_type = mime
    if media.sha256 and media.sha256 != digest:
        logger.warning("media %s: sha256 differs from the webhook's (%s != %s)", media.media_id, digest, media.sha256)
    media.sha256 = digest
    media.status = Media.Status.READY
    media.error = ""
    media.downloaded_at = timezone.now()
    media.save()
    return media
