"""Files an agent sends: the type read from the content (never the name), within WhatsApp's limits.

WhatsApp accepts, per media message type (Cloud API, "Supported media types"):
  image     JPEG, PNG                                  5 MB
  audio     AAC, AMR, MP3, MP4 audio, OGG (Opus)        16 MB
  video     MP4, 3GPP                                  16 MB
  document  PDF, plain text, Word, Excel, PowerPoint   100 MB
Anything else is refused here with a clear message, before it is stored or queued.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError

# The kinds an agent may attach (stickers are WebP only and sent by customers).
ATTACHMENT_KINDS = ("image", "audio", "video", "document")
_SNIFF_BYTES = 4096

_OFFICE_ZIP = {
    "word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt/": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
# The old binary Office formats share one container (OLE2); the extension says which it is.
_OFFICE_OLE = {
    ".doc": "application/msword",
    ".xls": "application/vnd.ms-excel",
    ".ppt": "application/vnd.ms-powerpoint",
}
_KIND_OF = {
    "image/jpeg": "image",
    "image/png": "image",
    "audio/aac": "audio",
    "audio/amr": "audio",
    "audio/mpeg": "audio",
    "audio/mp4": "audio",
    "audio/ogg": "audio",
    "video/mp4": "video",
    "video/3gpp": "video",
    "application/pdf": "document",
    "text/plain": "document",
    **dict.fromkeys(_OFFICE_ZIP.values(), "document"),
    **dict.fromkeys(_OFFICE_OLE.values(), "document"),
}


class AttachmentInvalid(ApplicationError):
    code = "attachment_invalid"


@dataclass(frozen=True)
class Attachment:
    kind: str  # image | audio | video | document
    mime_type: str
    size: int
    filename: str


def _mp4_brand(head: bytes) -> str:
    return head[8:12].decode("latin-1") if head[4:8] == b"ftyp" else ""


def _sniff(head: bytes, file: IO[bytes], filename: str) -> str:
    """The MIME type the content shows, or "" when it is none WhatsApp takes."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # A frame sync: ADTS (AAC) frames have layer bits 00, MPEG audio (MP3) frames a layer.
        return "audio/aac" if head[1] & 0x06 == 0 else "audio/mpeg"
    brand = _mp4_brand(head)
    if brand:
        if brand.startswith("3g"):
            return "video/3gpp"
        if brand.startswith(("M4A", "M4B")):
            return "audio/mp4"
        return "video/mp4"
    if head.startswith(b"PK\x03\x04"):
        file.seek(0)
        try:
            with zipfile.ZipFile(file) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return ""
        if "[Content_Types].xml" in names:
            for prefix, mime in _OFFICE_ZIP.items():
                if any(name.startswith(prefix) for name in names):
                    return mime
        return ""
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        extension = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        return _OFFICE_OLE.get(extension, "")
    if head and b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the end of the sample is still text.
            if exc.start < len(head) - 3:
                return ""
        return "text/plain"
    return ""


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size // 1024} KB"


def attachment_inspect(*, file: IO[bytes], filename: str, size: int) -> Attachment:
    """Read the type from the file's content and check it against WhatsApp's limits for that type."""
    filename = (filename or "").replace("\\", "/").rsplit("/", 1)[-1][:240] or "file"
    if size <= 0:
        raise AttachmentInvalid(_("The file %(name)s is empty.") % {"name": filename}, extra={"field": "file"})
    file.seek(0)
    head = file.read(_SNIFF_BYTES)
    mime = _sniff(head, file, filename)
    file.seek(0)
    kind = _KIND_OF.get(mime)
    if kind is None:
        raise AttachmentInvalid(
            _(
                "WhatsApp cannot send %(name)s: send a photo (JPEG or PNG), a voice note or audio file "
                "(AAC, AMR, MP3, M4A, OGG), a video (MP4, 3GP) or a document (PDF, text, Word, Excel, PowerPoint)."
            )
            % {"name": filename},
            extra={"field": "file", "filename": filename},
        )
    limit = int(settings.WHATSAPP_MEDIA_MAX_BYTES[kind])
    if size > limit:
        labels = {"image": _("photos"), "audio": _("audio files"), "video": _("videos"), "document": _("documents")}
        raise AttachmentInvalid(
            _("%(name)s is %(size)s; WhatsApp sends %(kind)s of at most %(limit)s.")
            % {"name": filename, "size": _megabytes(size), "kind": labels[kind], "limit": _megabytes(limit)},
            extra={"field": "file", "kind": kind, "size": size, "limit": limit},
        )
    return Attachment(kind=kind, mime_type=mime, size=size, filename=filename)


def attachment_inspect_bytes(content: bytes, *, filename: str) -> Attachment:
    return attachment_inspect(file=io.BytesIO(content), filename=filename, size=len(content))
