"""Tenancy and authentication for websockets, where Django's middleware does not run."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AnonymousUser
from django.utils.module_loading import import_string
from django_tenants.utils import get_tenant_domain_model, remove_www

from apps.core.tenancy import schema_context, tenant_context

Scope = dict[str, Any]


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def host_from_scope(scope: Scope) -> str:
    host = _header(scope, b"host").split(":")[0].strip().lower()
    return str(remove_www(host))


@database_sync_to_async
def _tenant_for_host(host: str) -> Any:
    domain_model = get_tenant_domain_model()
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        domain = domain_model.objects.select_related("tenant").filter(domain=host).first()
    return domain.tenant if domain is not None else None


class _SessionHolder:
    """The slice of HttpRequest that django.contrib.auth.get_user reads."""

    def __init__(self, session: Any) -> None:
        self.session = session


@database_sync_to_async
def _user_for_session(tenant: Any, session_key: str | None) -> Any:
    if not session_key:
        return AnonymousUser()
    engine = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    # The session and user tables live in the tenant's schema: read them there.
    with tenant_context(tenant):
        holder = _SessionHolder(engine(session_key))
        return get_user(holder)  # type: ignore[arg-type]


def same_origin(scope: Scope) -> bool:
    """A browser socket must come from a page of the same host: no tenant's page may open another's."""
    origin = _header(scope, b"origin")
    if not origin:
        return False
    return str(remove_www((urlsplit(origin).hostname or "").lower())) == host_from_scope(scope)


class TenantAuthMiddleware:
    """Resolve the tenant from the Host header, then the user from the session cookie in its schema."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        scope = dict(scope)
        tenant = await _tenant_for_host(host_from_scope(scope))
        scope["tenant"] = tenant
        if not same_origin(scope):
            scope["user"] = AnonymousUser()
        elif tenant is None or tenant.schema_name == settings.PUBLIC_SCHEMA_NAME:
            scope["tenant"] = None
            scope["user"] = AnonymousUser()
        else:
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(_header(scope, b"cookie"))
            morsel = cookie.get(settings.SESSION_COOKIE_NAME)
            scope["user"] = await _user_for_session(tenant, morsel.value if morsel else None)
            if scope["user"].is_authenticated and morsel is not None:
                scope["session_key"] = morsel.value  # its sockets close when it signs out
        return await self.app(scope, receive, send)
