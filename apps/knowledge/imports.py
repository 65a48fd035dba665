"""Files for a bulk import: one file (a DOCX or XLSX too), a folder (recursively) or a zip archive."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.utils.translation import gettext as _

from apps.knowledge.exceptions import DocumentTooLarge, DocumentZipBomb


@dataclass(frozen=True)
class ImportItem:
    name: str  # path inside the folder or archive
    folder: str  # first folder of that path: becomes the category
    data: bytes


def _folder(relative: PurePosixPath) -> str:
    return relative.parts[0] if len(relative.parts) > 1 else ""


def _hidden(relative: PurePosixPath) -> bool:
    return any(part.startswith((".", "__MACOSX")) for part in relative.parts)


# Office Open XML files are zip containers too, but each is one document, not an archive.
_OOXML_SUFFIXES = {".docx", ".docm", ".xlsx", ".xlsm", ".pptx", ".pptm"}


def _archive(path: Path, name: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    if PurePosixPath(name).suffix.lower() in _OOXML_SUFFIXES:
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return "[Content_Types].xml" not in archive.namelist()
    except (zipfile.BadZipFile, EOFError, ValueError):
        return False  # a damaged file: imported as one (failed) document


def import_items(path: Path, *, name: str = "") -> Iterator[ImportItem]:
    """The files to import from `path`; `name` is a single file's own name (an upload's, not its temp file's)."""
    limit = settings.KNOWLEDGE_MAX_UPLOAD_BYTES
    name = PurePosixPath(name.replace("\\", "/")).name or path.name
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            relative = PurePosixPath(file.relative_to(path).as_posix())
            if _hidden(relative):
                continue
            if file.stat().st_size > limit:
                raise DocumentTooLarge(_("%(name)s is larger than the upload limit.") % {"name": relative})
            yield ImportItem(str(relative), _folder(relative), file.read_bytes())
        return
    if _archive(path, name):
        with zipfile.ZipFile(path) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            if sum(info.file_size for info in infos) > settings.KNOWLEDGE_ZIP_MAX_UNCOMPRESSED_BYTES:
                raise DocumentZipBomb(_("The archive would expand to more than the allowed size."))
            for info in sorted(infos, key=lambda i: i.filename):
                relative = PurePosixPath(info.filename)
                if _hidden(relative) or relative.is_absolute() or ".." in relative.parts:
                    continue
                if info.file_size > limit:
                    raise DocumentTooLarge(_("%(name)s is larger than the upload limit.") % {"name": relative})
                yield ImportItem(str(relative), _folder(relative), archive.read(info))
        return
    if path.stat().st_size > limit:
        raise DocumentTooLarge(_("%(name)s is larger than the upload limit.") % {"name": name})
    yield ImportItem(name, "", path.read_bytes())
