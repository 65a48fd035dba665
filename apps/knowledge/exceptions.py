"""Errors of the knowledge base; their codes are stored on a failed document."""

from __future__ import annotations

from apps.core.exceptions import ApplicationError


class DocumentError(ApplicationError):
    """A document that cannot be indexed: its code and message are stored on the row."""

    code = "document_invalid"


class DocumentTooLarge(DocumentError):
    code = "document_too_large"


class DocumentUnsupported(DocumentError):
    code = "document_unsupported"


class DocumentCorrupt(DocumentError):
    code = "document_corrupt"


class DocumentUndecodable(DocumentError):
    code = "document_undecodable"


class DocumentEncrypted(DocumentError):
    code = "document_encrypted"


class DocumentEmpty(DocumentError):
    code = "document_empty"


class DocumentZipBomb(DocumentError):
    code = "document_zip_bomb"


class ArticleVersionUnknown(ApplicationError):
    code = "article_version_unknown"
    status_code = 404
