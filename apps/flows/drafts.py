"""Editing flows in the builder: create, save a draft, revert it to a version, import and export.

A draft may be unfinished (that is what drafts are for), but it must always be a graph the
builder can open: `graph.graph_parse` checks the structure, and the publish checks
(`graph.graph_problems`) are reported next to it without refusing the save.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.core.json_input import json_too_deep, json_too_deep_message, json_unstorable_character
from apps.flows import graph as g
from apps.flows.models import Flow, FlowVersion

EXPORT_FORMAT = "imaradesk-flow"
EXPORT_FORMAT_VERSION = 1
MAX_NODES = 200  # far beyond any flow a person builds by hand; keeps a pasted file from bloating a row
MAX_GRAPH_BYTES = 256 * 1024
MAX_IMPORT_BYTES = 512 * 1024  # an export is about 1 KB per step
PRIORITY_MIN, PRIORITY_MAX = -1000, 1000  # the API's range; far inside the integer column's


class FlowImportInvalid(ApplicationError):
    code = "flow_import_invalid"


class FlowDraftConflict(ConflictError):
    code = "flow_draft_conflict"


class FlowVersionNotFound(NotFoundError):
    code = "flow_version_not_found"


def _draft_checked(data: Any) -> dict[str, Any]:
    """The draft as it will be stored: structurally sound, within size limits, storable as jsonb."""
    if json_too_deep(data):
        raise g.FlowGraphInvalid(json_too_deep_message())
    g.graph_parse(data)
    character = json_unstorable_character(data)
    if character is not None:
        raise g.FlowGraphInvalid(
            _("Text in a flow cannot contain the character %(character)s.") % {"character": character},
            extra={"character": character},
        )
    if len(data["nodes"]) > MAX_NODES:
        raise g.FlowGraphInvalid(
            _("A flow can have at most %(max)d steps; this one has %(count)d.")
            % {"max": MAX_NODES, "count": len(data["nodes"])}
        )
    encoded = json.dumps(data)
    if len(encoded.encode()) > MAX_GRAPH_BYTES:
        raise g.FlowGraphInvalid(_("The flow is too large to save (more than 256 KB)."))
    stored: dict[str, Any] = json.loads(encoded)
    return stored


def flow_create(*, name: str, priority: int = 0, draft: dict[str, Any] | None = None) -> Flow:
    flow = Flow(name=name.strip() or _("New flow"), priority=priority)
    if draft is not None:
        flow.draft = _draft_checked(draft)
    flow.save()
    return flow


@transaction.atomic
def flow_update(
    *,
    flow: Flow,
    name: str | None = None,
    priority: int | None = None,
    draft: dict[str, Any] | None = None,
    expected_updated: datetime | None = None,
) -> Flow:
    """Save the builder's changes; with `expected_updated`, refuse to overwrite someone else's newer save."""
    locked = Flow.objects.select_for_update().get(pk=flow.pk)
    if expected_updated is not None and locked.updated != expected_updated:
        raise FlowDraftConflict(
            _("Someone else saved this flow after you opened it. Reload the builder to see their changes."),
            extra={"updated": locked.updated.isoformat()},
        )
    if name is not None:
        locked.name = name.strip() or locked.name
    if priority is not None:
        locked.priority = priority
    if draft is not None:
        locked.draft = _draft_checked(draft)
    locked.save()
    return locked


def flow_draft_revert(*, flow: Flow, number: int) -> Flow:
    """Replace the draft with a published version's graph (the versions themselves never change)."""
    version = FlowVersion.objects.filter(flow=flow, number=number).first()
    if version is None:
        raise FlowVersionNotFound(_("This flow has no version %(number)d.") % {"number": number})
    return flow_update(flow=flow, draft=version.graph)


def flow_export(*, flow: Flow) -> dict[str, Any]:
    """The flow's draft as a self-describing document that `flow_import` reads back."""
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "name": flow.name,
        "priority": flow.priority,
        "exported": timezone.now().isoformat(),
        "graph": flow.draft,
    }


def flow_import_upload(upload: UploadedFile | None) -> bytes:
    """The bytes of an uploaded export, refused when missing or too large to be one."""
    if upload is None:
        raise FlowImportInvalid(_("Choose a .json file exported from a flow."), extra={"reason": "missing"})
    if upload.size is not None and upload.size > MAX_IMPORT_BYTES:
        raise FlowImportInvalid(_("The file is larger than 512 KB."), extra={"reason": "size"})
    return bytes(upload.read())


def flow_import_read(raw: bytes | str | dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
    """Read an exported flow, or a bare `{"nodes": [...]}` graph: (name, priority, graph)."""
    if isinstance(raw, dict):
        document: Any = raw
    else:
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FlowImportInvalid(
                _("This file is not valid JSON: %(error)s") % {"error": exc}, extra={"reason": "json"}
            ) from exc
        except RecursionError as exc:
            raise FlowImportInvalid(json_too_deep_message(), extra={"reason": "json"}) from exc
        if json_too_deep(document):
            raise FlowImportInvalid(json_too_deep_message(), extra={"reason": "json"})
    if not isinstance(document, dict):
        raise FlowImportInvalid(_("The file must hold one flow (a JSON object)."), extra={"reason": "shape"})
    if "graph" in document:
        if document.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
            raise FlowImportInvalid(_("This file is not an Imaradesk flow export."), extra={"reason": "format"})
        format_version = document.get("format_version", EXPORT_FORMAT_VERSION)
        if isinstance(format_version, bool) or not str(format_version).strip().isdigit():
            raise FlowImportInvalid(
                _("The file's format_version is not a whole number: %(value)s") % {"value": str(format_version)[:20]},
                extra={"reason": "format_version"},
            )
        if int(str(format_version)) > EXPORT_FORMAT_VERSION:
            raise FlowImportInvalid(
                _("This file comes from a newer version of Imaradesk and cannot be read here."),
                extra={"reason": "format_version"},
            )
        graph = document["graph"]
    elif "nodes" in document:
        graph = document
    else:
        raise FlowImportInvalid(
            _("The file has neither a flow export's “graph” nor a graph's “nodes”."),
            extra={"reason": "shape"},
        )
    name = str(document.get("name") or "")[:120]
    try:
        priority = int(document.get("priority") or 0)
    except (TypeError, ValueError):
        priority = 0
    except OverflowError:  # 1e999 in the JSON reads as infinity
        priority = PRIORITY_MAX + 1
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise FlowImportInvalid(
            _("The flow's priority must be between %(min)d and %(max)d.") % {"min": PRIORITY_MIN, "max": PRIORITY_MAX},
            extra={"reason": "priority"},
        )
    try:
        checked = _draft_checked(graph)
    except g.FlowGraphInvalid as exc:
        raise FlowImportInvalid(
            _("The flow in this file is not valid: %(problem)s") % {"problem": exc.message},
            extra={"reason": "graph", **exc.extra},
        ) from exc
    return name, priority, checked


def flow_import(*, raw: bytes | str | dict[str, Any], flow: Flow | None = None, name: str = "") -> Flow:
    """Create a flow from an exported file, or replace an existing flow's draft with it."""
    file_name, priority, graph = flow_import_read(raw)
    if flow is None:
        return flow_create(name=name or file_name or _("Imported flow"), priority=priority, draft=graph)
    return flow_update(flow=flow, draft=graph)
