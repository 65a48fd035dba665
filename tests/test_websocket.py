"""The live events socket: authenticated, tenant-resolved from Host, never crossing tenants."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.db import transaction

from apps.accounts.models import AgentProfile
from apps.core.consumers import CLOSE_UNAUTHENTICATED, CLOSE_UNKNOWN_TENANT
from apps.core.realtime import event_publish
from apps.core.tenancy import schema_context
from imaradesk.asgi import application
from tests.conftest import TenantSetup, admin_user, session_key_for


def _session_for(tenant: TenantSetup) -> str:
    return session_key_for(tenant.schema, admin_user(tenant))


@pytest.fixture
def sessions(committed_db: None, tenant_a: TenantSetup, tenant_b: TenantSetup) -> Iterator[dict[str, str]]:
    keys = {"a": _session_for(tenant_a), "b": _session_for(tenant_b)}
    yield keys
    for tenant, key in ((tenant_a, keys["a"]), (tenant_b, keys["b"])):
        with schema_context(tenant.schema):
            SessionStore(key).delete()


def _socket(host: str, session_key: str | None = None, origin: str | None = None) -> WebsocketCommunicator:
    headers = [(b"host", host.encode()), (b"origin", (origin or f"http://{host}").encode())]
    if session_key:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode()))
    return WebsocketCommunicator(application, "/ws/events/", headers=headers)


@database_sync_to_async
def _publish(schema: str, event_type: str, data: dict[str, Any], user_id: int | None = None) -> None:
    with schema_context(schema), transaction.atomic():
        event_publish(event_type=event_type, data=data, user_id=user_id)


@pytest.fixture
async def connected(
    sessions: dict[str, str], tenant_a: TenantSetup, tenant_b: TenantSetup
) -> AsyncIterator[dict[str, WebsocketCommunicator]]:
    sockets = {"a": _socket(tenant_a.domain, sessions["a"]), "b": _socket(tenant_b.domain, sessions["b"])}
    for name, socket in sockets.items():
        ok, _code = await socket.connect()
        assert ok, name
        hello = await socket.receive_json_from()
        assert hello["type"] == "hello"
    yield sockets
    for socket in sockets.values():
        await socket.disconnect()


async def test_events_reach_only_their_tenant(
    connected: dict[str, WebsocketCommunicator], tenant_a: TenantSetup, tenant_b: TenantSetup
) -> None:
    # A tenant-wide event (a document's indexing progress): every socket of the tenant gets it.
    await _publish(tenant_a.schema, "knowledge.document.progress", {"id": 1, "title": "alpha secret"})
    received = await connected["a"].receive_json_from(timeout=5)
    assert received["type"] == "knowledge.document.progress"
    assert received["data"] == {"id": 1, "title": "alpha secret"}
    assert await connected["b"].receive_nothing(timeout=0.5)

    await _publish(tenant_b.schema, "knowledge.document.progress", {"id": 2})
    assert (await connected["b"].receive_json_from(timeout=5))["data"] == {"id": 2}
    assert await connected["a"].receive_nothing(timeout=0.5)


async def test_user_events_reach_only_that_user_of_that_tenant(
    connected: dict[str, WebsocketCommunicator], tenant_a: TenantSetup, tenant_b: TenantSetup
) -> None:
    user_a = await database_sync_to_async(admin_user)(tenant_a)
    user_b = await database_sync_to_async(admin_user)(tenant_b)
    # Both admins were the first user of their schema: same primary key, so only the
    # schema prefix of the group name keeps the event from reaching tenant B.
    assert user_a.pk == user_b.pk
    await _publish(tenant_a.schema, "assignment.changed", {"conversation": 7}, user_id=user_a.pk)
    assert (await connected["a"].receive_json_from(timeout=5))["type"] == "assignment.changed"
    assert await connected["b"].receive_nothing(timeout=0.5)


async def _refused(socket: WebsocketCommunicator) -> int:
    """Connect, expect a refusal, and end the consumer: a refused consumer keeps running (its
    channel-layer receive included) until it is told the client left; left to the event loop's
    teardown, cancelling it has been seen to hang the test run."""
    ok, code = await socket.connect()
    await socket.disconnect()
    assert not ok
    return int(code)


async def test_session_of_a_is_refused_on_b(sessions: dict[str, str], tenant_b: TenantSetup) -> None:
    assert await _refused(_socket(tenant_b.domain, sessions["a"])) == CLOSE_UNAUTHENTICATED


async def test_anonymous_and_cross_origin_and_unknown_host_are_refused(
    sessions: dict[str, str], tenant_a: TenantSetup, tenant_b: TenantSetup
) -> None:
    assert await _refused(_socket(tenant_a.domain)) == CLOSE_UNAUTHENTICATED

    # A page of tenant B must not open a socket on tenant A with A's cookie.
    cross = _socket(tenant_a.domain, sessions["a"], origin=f"http://{tenant_b.domain}")
    assert await _refused(cross) == CLOSE_UNAUTHENTICATED

    assert await _refused(_socket("nobody.localhost", sessions["a"])) == CLOSE_UNKNOWN_TENANT


async def test_open_socket_marks_the_agent_online(
    connected: dict[str, WebsocketCommunicator], tenant_a: TenantSetup
) -> None:
    await connected["a"].send_json_to({"type": "ping"})
    assert (await connected["a"].receive_json_from(timeout=5))["type"] == "pong"

    @database_sync_to_async
    def profile() -> AgentProfile:
        user = admin_user(tenant_a)
        with schema_context(tenant_a.schema):
            return AgentProfile.objects.get(user_id=user.pk)

    current = await profile()
    assert current.status == AgentProfile.Status.ONLINE
    assert current.last_seen_at is not None


async def test_an_idle_socket_still_receives_events(
    connected: dict[str, WebsocketCommunicator], tenant_a: TenantSetup
) -> None:
    # Regression: with redis-py 8's default 5 s read timeout, the channel layer's blocking
    # receive died on the first idle period longer than 5 s, and the agent saw nothing more.
    await asyncio.sleep(6.5)
    await _publish(tenant_a.schema, "conversation.updated", {"id": 9})
    assert (await connected["a"].receive_json_from(timeout=5))["data"] == {"id": 9}


@database_sync_to_async
def _switch_active(tenant: TenantSetup, active: bool) -> None:
    with schema_context(tenant.schema), transaction.atomic():
        user = admin_user(tenant)
        user.is_active = active
        user.save()


@database_sync_to_async
def _sign_out(tenant: TenantSetup, session_key: str) -> None:
    from django.contrib.auth import logout
    from django.test import RequestFactory

    with schema_context(tenant.schema), transaction.atomic():
        request = RequestFactory().post("/logout/", HTTP_HOST=tenant.domain)
        request.session = SessionStore(session_key)
        request.user = admin_user(tenant)
        logout(request)


@database_sync_to_async
def _session_delete(tenant: TenantSetup, session_key: str) -> None:
    with schema_context(tenant.schema):
        SessionStore(session_key).delete()


async def test_a_socket_closes_when_its_user_is_switched_off(
    connected: dict[str, WebsocketCommunicator], tenant_a: TenantSetup
) -> None:
    # A socket is authenticated once, when it opens: switching the user off must end it now,
    # not when it next reconnects (the tenant's events would keep flowing to them).
    try:
        await _switch_active(tenant_a, False)
        assert await connected["a"].receive_output(timeout=5) == {
            "type": "websocket.close",
            "code": CLOSE_UNAUTHENTICATED,
        }
        assert await connected["b"].receive_nothing(timeout=0.5)  # the other tenant's socket stays
    finally:
        await _switch_active(tenant_a, True)


async def test_signing_out_closes_that_sessions_sockets_only(sessions: dict[str, str], tenant_a: TenantSetup) -> None:
    other_session = await database_sync_to_async(_session_for)(tenant_a)
    signing_out = _socket(tenant_a.domain, sessions["a"])
    elsewhere = _socket(tenant_a.domain, other_session)  # the same user on another device
    for socket in (signing_out, elsewhere):
        assert (await socket.connect())[0]
        assert (await socket.receive_json_from())["type"] == "hello"
    try:
        await _sign_out(tenant_a, sessions["a"])
        assert await signing_out.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}
        assert await elsewhere.receive_nothing(timeout=0.5)
    finally:
        await elsewhere.disconnect()
        await _session_delete(tenant_a, other_session)
