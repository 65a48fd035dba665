"""Secrets at rest: Fernet encryption for model fields, with key rotation.

FIELD_ENCRYPTION_KEYS holds one or more Fernet keys, newest first (comma-separated in the
environment): new values are encrypted with the first, old values still decrypt with any.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

logger = logging.getLogger(__name__)


class DecryptionFailed(Exception):
    """A stored secret could not be decrypted with any configured key."""


class UndecryptableSecret(str):
    """A stored secret that no configured key opens: it reads as empty (not set), and is
    written back exactly as it was, so fixing FIELD_ENCRYPTION_KEYS brings it back."""

    token: str

    def __new__(cls, token: str) -> UndecryptableSecret:
        secret = super().__new__(cls, "")
        secret.token = token
        return secret


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt(value: str) -> str:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS)).encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS)).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionFailed("A stored secret cannot be decrypted: was FIELD_ENCRYPTION_KEYS changed?") from exc


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """A text column whose value is stored encrypted; Python code sees the plain text."""

    description = "Encrypted text"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        try:
            return decrypt(value)
        except DecryptionFailed:
            # One bad secret must not take down every page and webhook that loads its row: it
            # reads as "not set" (the AI falls back to offline, a number to the platform's app
            # secret), and the operator is told loudly.
            logger.error("a stored secret cannot be decrypted (%s): was FIELD_ENCRYPTION_KEYS changed?", self.name)
            return UndecryptableSecret(value)

    def get_prep_value(self, value: Any) -> Any:
        if isinstance(value, UndecryptableSecret):
            return value.token  # unchanged, never re-encrypted as ""
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))
