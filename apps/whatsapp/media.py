"""Customer media: media id -> Graph GET /{media-id} -> short-lived URL -> download into storage."""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db.models import F, Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.queue import enqueue_on_commit
from apps.tenants.models import WhatsAppAccount
from apps.whatsapp.client import GraphApiError, MediaTooLarge, WhatsAppClient
from apps.whatsapp.models import Media
from apps.whatsapp.payloads import MediaRef

logger = logging.getLogger(__name__)

# One attempt's claim: a worker that dies mid-download frees the file after this (a large
# document over a slow link included).
DOWNLOAD_LEASE = timedelta(minutes=10)
RETRY_MAX_SECONDS = 6 * 3600.0
# The sweeper leaves a new file to its own task for a while, and a retry a little past its time.
SWEEP_FIRST_AFTER = timedelta(minutes=5)
SWEEP_GRACE = timedelta(minutes=2)


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


def _download_claim(media: Media) -> bool:
    """Take the next attempt (one worker at a time): due, still pending, and counted."""
    now = timezone.now()
    claimed = (
        Media.objects.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(pk=media.pk, status=Media.Status.PENDING)
        .update(attempts=F("attempts") + 1, next_attempt_at=now + DOWNLOAD_LEASE)
    )
    if claimed:
        media.refresh_from_db(fields=["attempts", "next_attempt_at"])
    return bool(claimed)


def media_download(*, media_id: int, client: WhatsAppClient | None = None) -> Media:
    """Fetch the file into storage, within the size limit for its type.

    Retryable errors (Graph 5xx/429/network, and any storage error) propagate: the caller
    records them with `media_download_failed`.
    """
    media = Media.objects.select_related("account").get(pk=media_id)
    if media.status != Media.Status.PENDING or not media.media_id:
        return media  # settled already, or an agent's file (which we upload, never download)
    if not _download_claim(media):
        return media  # another worker holds this attempt, or the next one is not due yet
    account = media.account
    client = client or WhatsAppClient(phone_number_id=account.phone_number_id, access_token=account.access_token)
    limit = _size_limit(media.kind)
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
    media.next_attempt_at = None
    media.save()
    return media


def _size_limit(kind: str) -> int:
    limit: int = settings.WHATSAPP_MEDIA_MAX_BYTES.get(kind, 16 * 1024 * 1024)
    return limit


def media_problem(media: Media) -> str:
    """Why an agent cannot open a customer's file, in the agent's language; "" when nothing is wrong.

    `Media.error` keeps the technical reason (Meta's error, the attempts) for admins and logs.
    """
    if media.status == Media.Status.TOO_LARGE:
        return _(
            "The file is larger than %(size)s, the most this helpdesk keeps for this kind of file. "
            "Ask the customer to send a smaller one."
        ) % {"size": filesizeformat(_size_limit(media.kind))}
    if media.status != Media.Status.FAILED:
        return ""
    if not media.attempts:
        # Failed without a download attempt: a sandbox number's file, which exists nowhere.
        return _("Test (sandbox) numbers have no files to download.")
    return _("The file could not be downloaded from WhatsApp. Ask the customer to send it again.")


def media_download_failed(*, media_id: int, error: str) -> float | None:
    """Record a failed attempt; return the seconds until the next one, or None once it is marked failed."""
    media = Media.objects.filter(pk=media_id, status=Media.Status.PENDING).first()
    if media is None:
        return None
    limit: int = settings.WHATSAPP_MEDIA_DOWNLOAD_MAX_ATTEMPTS
    if media.attempts >= limit:
        media.status = Media.Status.FAILED
        media.next_attempt_at = None
        media.error = f"Could not download it from WhatsApp after {media.attempts} attempts. Last error: {error}"[:2000]
        media.save(update_fields=["status", "error", "next_attempt_at"])
        logger.warning(
            "media %s (%s): giving up after %d attempts: %s", media.pk, media.media_id, media.attempts, error
        )
        return None
    retry_in: float = min(4.0 * 2**media.attempts, RETRY_MAX_SECONDS)
    media.error = error[:2000]
    media.next_attempt_at = timezone.now() + timedelta(seconds=retry_in)
    media.save(update_fields=["error", "next_attempt_at"])
    return retry_in


def media_download_overdue() -> list[int]:
    """Pending customer media whose download task was lost: never tried, or its retry overdue."""
    now = timezone.now()
    never_tried = Q(next_attempt_at__isnull=True, created__lt=now - SWEEP_FIRST_AFTER)
    overdue = Q(next_attempt_at__lt=now - SWEEP_GRACE)
    return list(
        Media.objects.filter(never_tried | overdue, status=Media.Status.PENDING, media_id__isnull=False)
        .filter(account__transport=WhatsAppAccount.Transport.CLOUD)
        .order_by("id")
        .values_list("pk", flat=True)[:500]
    )
