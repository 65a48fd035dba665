"""Failed sign-ins per client address: every door (sign-in page, both back offices, the token API).

Counters live in the default cache, whose keys carry the tenant's schema (django-tenants'
`make_key`): failures on one tenant's host never lock anyone out of another's. The client
address is REMOTE_ADDR, which uvicorn (`--proxy-headers`) sets from X-Forwarded-For only when
the request came through a trusted proxy (FORWARDED_ALLOW_IPS); the header itself is never
read here, so a client cannot pick a fresh address for each guess.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

KEY_PREFIX = "sign-in-failures"


def _client_address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _keys(request: HttpRequest, username: str) -> tuple[str, str]:
    address = _client_address(request)
    pair = hashlib.sha256(f"{address}\x00{username.strip().lower()}".encode()).hexdigest()
    return f"{KEY_PREFIX}:pair:{pair}", f"{KEY_PREFIX}:address:{address}"


def sign_in_blocked(*, request: HttpRequest, username: str) -> bool:
    """Whether this address has failed too often, for this account or for any."""
    pair_key, address_key = _keys(request, username)
    counts = cache.get_many([pair_key, address_key])
    return (
        int(counts.get(pair_key, 0)) >= settings.SIGN_IN_MAX_FAILURES
        or int(counts.get(address_key, 0)) >= settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS
    )


def sign_in_failure_record(*, request: HttpRequest, username: str) -> None:
    for key in _keys(request, username):
        # add() starts the window; incr() never extends it, so the block ends on time.
        cache.add(key, 0, timeout=settings.SIGN_IN_FAILURE_WINDOW_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.set(key, 1, timeout=settings.SIGN_IN_FAILURE_WINDOW_SECONDS)


def sign_in_failures_clear(*, request: HttpRequest, username: str) -> None:
    """A correct password forgets this account's failures from this address (not the address's)."""
    cache.delete(_keys(request, username)[0])


SIGN_IN_BLOCKED_MESSAGE = _("Too many failed sign-in attempts. Try again in a few minutes.")


class LimitedAuthenticationForm(AuthenticationForm):
    """Django's sign-in form, refusing to check passwords for an address that failed too often."""

    def clean(self) -> dict[str, Any]:
        username = str(self.cleaned_data.get("username") or "")
        if self.request is None:
            return super().clean()
        if sign_in_blocked(request=self.request, username=username):
            raise forms.ValidationError(SIGN_IN_BLOCKED_MESSAGE, code="sign_in_blocked")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            sign_in_failure_record(request=self.request, username=username)
            raise
        sign_in_failures_clear(request=self.request, username=username)
        return cleaned
