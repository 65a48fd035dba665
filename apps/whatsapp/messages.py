"""Outgoing message builders with Meta's limits checked before anything is sent.

Each builder returns the Graph API request body for POST /{phone-number-id}/messages
(without `messaging_product`, which the client adds). A message that breaks a limit raises
`MessageInvalid`, naming the field and the limit, instead of failing later at Meta.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError

TEXT_MAX = 4096
BODY_MAX = 1024
HEADER_TEXT_MAX = 60
FOOTER_MAX = 60
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
LIST_ROWS_MAX = 10
LIST_BUTTON_MAX = 20
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
ROW_ID_MAX = 200
SECTION_TITLE_MAX = 24
CAPTION_MAX = 1024
FREE_FORM_KINDS = {"text", "interactive", "media", "reaction"}


class MessageInvalid(ApplicationError):
    code = "message_invalid"


def _limit(value: str, field_name: str, limit: int, *, required: bool = True) -> str:
    if required and not value.strip():
        raise MessageInvalid(_("%(field)s is empty.") % {"field": field_name}, extra={"field": field_name})
    if len(value) > limit:
        raise MessageInvalid(
            _("%(field)s is %(length)d characters; WhatsApp allows at most %(limit)d.")
            % {"field": field_name, "length": len(value), "limit": limit},
            extra={"field": field_name, "length": len(value), "limit": limit},
        )
    return value


@dataclass(frozen=True)
class Outgoing:
    kind: str  # text | interactive | template | media | reaction
    payload: dict[str, Any]
    preview: str  # what the inbox and the simulator show

    @property
    def needs_open_window(self) -> bool:
        """Only templates may be sent outside the 24-hour customer service window (131047)."""
        return self.kind in FREE_FORM_KINDS

    @property
    def template_named(self) -> tuple[str, str] | None:
        """A template message's name and language code; None for other kinds."""
        if self.kind != "template":
            return None
        template = self.payload.get("template") or {}
        return str(template.get("name", "")), str((template.get("language") or {}).get("code", ""))


def _to(payload: dict[str, Any], context_wamid: str) -> dict[str, Any]:
    if context_wamid:
        payload["context"] = {"message_id": context_wamid}
    return payload


def text(body: str, *, preview_url: bool = False, reply_to: str = "") -> Outgoing:
    _limit(body, "text", TEXT_MAX)
    payload = {"type": "text", "text": {"body": body, "preview_url": preview_url}}
    return Outgoing("text", _to(payload, reply_to), body)


@dataclass(frozen=True)
class Button:
    id: str
    title: str


def buttons(body: str, choices: list[Button], *, header: str = "", footer: str = "") -> Outgoing:
    _limit(body, "body", BODY_MAX)
    if not 1 <= len(choices) <= BUTTONS_MAX:
        raise MessageInvalid(
            _("A message has 1 to %(limit)d reply buttons, not %(count)d.")
            % {"limit": BUTTONS_MAX, "count": len(choices)},
            extra={"field": "buttons", "count": len(choices), "limit": BUTTONS_MAX},
        )
    seen: set[str] = set()
    for i, choice in enumerate(choices):
        _limit(choice.title, f"buttons[{i}].title", BUTTON_TITLE_MAX)
        _limit(choice.id, f"buttons[{i}].id", 256)
        if choice.id in seen:
            raise MessageInvalid(_("Button ids must be unique."), extra={"field": f"buttons[{i}].id"})
        seen.add(choice.id)
    interactive: dict[str, Any] = {
        "type": "button",
        "body": {"text": body},
        "action": {"buttons": [{"type": "reply", "reply": {"id": c.id, "title": c.title}} for c in choices]},
    }
    if header:
        interactive["header"] = {"type": "text", "text": _limit(header, "header", HEADER_TEXT_MAX)}
    if footer:
        interactive["footer"] = {"text": _limit(footer, "footer", FOOTER_MAX)}
    return Outgoing("interactive", {"type": "interactive", "interactive": interactive}, body)


@dataclass(frozen=True)
class Row:
    id: str
    title: str
    description: str = ""


@dataclass(frozen=True)
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)


def list_message(body: str, button: str, sections: list[Section], *, header: str = "", footer: str = "") -> Outgoing:
    _limit(body, "body", BODY_MAX)
    _limit(button, "button", LIST_BUTTON_MAX)
    rows = [row for section in sections for row in section.rows]
    if not 1 <= len(rows) <= LIST_ROWS_MAX:
        raise MessageInvalid(
            _("A list has 1 to %(limit)d rows, not %(count)d.") % {"limit": LIST_ROWS_MAX, "count": len(rows)},
            extra={"field": "rows", "count": len(rows), "limit": LIST_ROWS_MAX},
        )
    out_sections = []
    for s, section in enumerate(sections):
        if len(sections) > 1:
            _limit(section.title, f"sections[{s}].title", SECTION_TITLE_MAX)
        out_rows = []
        for r, row in enumerate(section.rows):
            _limit(row.title, f"sections[{s}].rows[{r}].title", ROW_TITLE_MAX)
            _limit(row.id, f"sections[{s}].rows[{r}].id", ROW_ID_MAX)
            _limit(row.description, f"sections[{s}].rows[{r}].description", ROW_DESCRIPTION_MAX, required=False)
            out_row = {"id": row.id, "title": row.title}
            if row.description:
                out_row["description"] = row.description
            out_rows.append(out_row)
        out_section: dict[str, Any] = {"rows": out_rows}
        if section.title:
            out_section["title"] = section.title
        out_sections.append(out_section)
    interactive: dict[str, Any] = {
        "type": "list",
        "body": {"text": body},
        "action": {"button": button, "sections": out_sections},
    }
    if header:
        interactive["header"] = {"type": "text", "text": _limit(header, "header", HEADER_TEXT_MAX)}
    if footer:
        interactive["footer"] = {"text": _limit(footer, "footer", FOOTER_MAX)}
    return Outgoing("interactive", {"type": "interactive", "interactive": interactive}, body)


_VARIABLE = re.compile(r"\{\{\s*(\d+)\s*\}\}")


def template_variable_count(template_text: str) -> int:
    return len(set(_VARIABLE.findall(template_text)))


def template(
    name: str,
    language: str,
    *,
    body_params: list[str] | None = None,
    expected_body_params: int | None = None,
    header_media: tuple[str, str] | None = None,  # (image|video|document, link or media id)
    button_payloads: list[str] | None = None,
) -> Outgoing:
    _limit(name, "template.name", 512)
    _limit(language, "template.language", 15)
    params = body_params or []
    if expected_body_params is not None and len(params) != expected_body_params:
        raise MessageInvalid(
            _("Template %(name)s takes %(expected)d body variables, not %(count)d.")
            % {"name": name, "expected": expected_body_params, "count": len(params)},
            extra={"field": "template.body_params", "expected": expected_body_params, "count": len(params)},
        )
    for i, value in enumerate(params):
        _limit(value, f"template.body_params[{i}]", BODY_MAX)
    components: list[dict[str, Any]] = []
    if header_media is not None:
        media_kind, ref = header_media
        if media_kind not in {"image", "video", "document"}:
            raise MessageInvalid(_("A template header is an image, a video or a document."), extra={"field": "header"})
        media = {"link": ref} if ref.startswith(("http://", "https://")) else {"id": ref}
        components.append({"type": "header", "parameters": [{"type": media_kind, media_kind: media}]})
    if params:
        components.append({"type": "body", "parameters": [{"type": "text", "text": v} for v in params]})
    for i, button_payload in enumerate(button_payloads or []):
        components.append(
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": str(i),
                "parameters": [{"type": "payload", "payload": button_payload}],
            }
        )
    body: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components:
        body["components"] = components
    return Outgoing("template", {"type": "template", "template": body}, f"[template {name}] " + " | ".join(params))


def media(kind: str, ref: str, *, caption: str = "", filename: str = "") -> Outgoing:
    _limit(ref, "media", 2000)
    return _media(kind, ref, caption=caption, filename=filename)


def attachment(kind: str, *, caption: str = "", filename: str = "") -> Outgoing:
    """A media message for a stored file: the outbox uploads it and fills in the media id when sending."""
    return _media(kind, "", caption=caption, filename=filename)


def _media(kind: str, ref: str, *, caption: str, filename: str) -> Outgoing:
    if kind not in {"image", "audio", "video", "document", "sticker"}:
        raise MessageInvalid(_("Unknown media type %(kind)s.") % {"kind": kind}, extra={"field": "type"})
    body: dict[str, Any] = {}
    if ref:
        body = {"link": ref} if ref.startswith(("http://", "https://")) else {"id": ref}
    if caption:
        if kind in {"audio", "sticker"}:
            raise MessageInvalid(_("%(kind)s messages have no caption.") % {"kind": kind}, extra={"field": "caption"})
        body["caption"] = _limit(caption, "caption", CAPTION_MAX)
    if filename and kind == "document":
        body["filename"] = _limit(filename, "filename", 240)
    return Outgoing("media", {"type": kind, kind: body}, caption or f"[{kind}]")


def reaction(wamid: str, emoji: str) -> Outgoing:
    _limit(wamid, "reaction.message_id", 200)
    _limit(emoji, "reaction.emoji", 10, required=False)
    return Outgoing("reaction", {"type": "reaction", "reaction": {"message_id": wamid, "emoji": emoji}}, emoji)
