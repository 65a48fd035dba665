"""Logging context: every record says which tenant it belongs to."""

from __future__ import annotations

import logging

from django.db import connection


class TenantContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "tenant"):
            record.tenant = getattr(connection, "schema_name", None) or "-"
        return True
