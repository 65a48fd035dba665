"""The inbox socket: the visibility rule on live events, catch-up after a drop, typing, tenants."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import AgentProfile, Team, User
from apps.accounts.roles import AGENT, KNOWLEDGE_EDITOR, SUPPORT_MANAGER
from apps.accounts.services import user_create
from apps.contacts.models import Contact, ServiceWindow
from apps.conversations.lifecycle import conversation_assign, conversation_takeover
from apps.conversations.models import Conversation, Message
from apps.conversations.selectors import conversation_list_for_user, viewer_can_see, viewer_for
from apps.conversations.services import message_send
from apps.conversations.tests.factories import conversation_create
from apps.core.realtime import event_publish
from apps.core.tenancy import tenant_context
from apps.whatsapp import messages as wa
from apps.whatsapp.models import OutboxMessage
from apps.whatsapp.outbox.statuses import outbox_status_publish
from imaradesk.asgi import application
from tests.conftest import TenantSetup, session_key_for

pytestmark = pytest.mark.usefixtures("committed_db")

_numbers = itertools.count(1)


@dataclass
class People:
    manager: User
    amina: User
    baraka: User
    editor: User
    team: Team


@pytest.fixture
def people(tenant_a: TenantSetup) -> Iterator[People]:
    tag = next(_numbers)
    with tenant_context(tenant_a.organization):
        team = Team.objects.create(name=f"Socket team {tag}")
        people = People(
            manager=user_create(email=f"sock-m{tag}@alpha.test", password=None, role=SUPPORT_MANAGER),
            amina=user_create(email=f"sock-a{tag}@alpha.test", password=None, role=AGENT),
            baraka=user_create(email=f"sock-b{tag}@alpha.test", password=None, role=AGENT),
            editor=user_create(email=f"sock-e{tag}@alpha.test", password=None, role=KNOWLEDGE_EDITOR),
            team=team,
        )
        team.members.add(people.amina)
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
    yield people
    with tenant_context(tenant_a.organization):
        Conversation.objects.all().delete()
        Contact.objects.all().delete()
        User.objects.filter(email__startswith="sock-").delete()
        Team.objects.filter(pk=team.pk).delete()


def _socket(tenant: TenantSetup, user: User) -> WebsocketCommunicator:
    key = session_key_for(tenant.schema, user)
    headers = [
        (b"host", tenant.domain.encode()),
        (b"origin", f"http://{tenant.domain}".encode()),
        (b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode()),
    ]
    return WebsocketCommunicator(application, "/ws/inbox/", headers=headers)


async def _open(tenant: TenantSetup, user: User) -> WebsocketCommunicator:
    socket: WebsocketCommunicator = await database_sync_to_async(_socket)(tenant, user)
    ok, _code = await socket.connect()
    assert ok
    assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
    return socket


async def _drain(socket: WebsocketCommunicator, timeout: float = 0.8) -> list[dict[str, Any]]:
    """Everything the socket receives until it stays quiet (a receive timeout would kill the app)."""
    received = []
    while not await socket.receive_nothing(timeout=timeout):
        received.append(await socket.receive_json_from(timeout=5))
    return received


@database_sync_to_async
def _conversation(tenant: TenantSetup, *, team: Team | None = None) -> Conversation:
    with tenant_context(tenant.organization):
        contact = Contact.objects.create(wa_id=f"2547{next(_numbers):08d}")
        return conversation_create(contact=contact, account=tenant.whatsapp, team=team, last_message_at=timezone.now())


@database_sync_to_async
def _in_tenant(tenant: TenantSetup, action: Any) -> Any:
    with tenant_context(tenant.organization), transaction.atomic():
        return action()


def _conversation_ids(events: list[dict[str, Any]]) -> set[int]:
    return {e["data"]["conversation"] for e in events if "conversation" in e.get("data", {})}


async def test_each_person_hears_only_about_conversations_they_may_see(tenant_a: TenantSetup, people: People) -> None:
    sockets = {name: await _open(tenant_a, getattr(people, name)) for name in ("manager", "amina", "baraka", "editor")}
    try:
        teams = await _conversation(tenant_a, team=people.team)
        general = await _conversation(tenant_a)
        await _in_tenant(tenant_a, lambda: conversation_takeover(conversation=general, agent=people.baraka))
        await _in_tenant(tenant_a, lambda: conversation_takeover(conversation=teams, agent=people.amina))
        heard = {name: _conversation_ids(await _drain(socket)) for name, socket in sockets.items()}
        assert heard["manager"] == {teams.pk, general.pk}
        # Amina saw the general conversation in the unassigned queue: she hears Baraka take it
        # (so her list drops it), and nothing after that.
        assert heard["amina"] == {teams.pk, general.pk}
        assert heard["baraka"] == {general.pk}  # the team's conversation was never in his queue
        assert heard["editor"] == set()

        # A manager moves Amina's conversation to Baraka: she hears it leave, he hears it come.
        await _in_tenant(
            tenant_a, lambda: conversation_assign(conversation=teams, agent=people.baraka, by=people.manager)
        )
        # Baraka's own conversation changes hands within his view only: Amina hears nothing of it.
        await _in_tenant(
            tenant_a, lambda: conversation_assign(conversation=general, agent=people.manager, by=people.manager)
        )
        amina_events = await _drain(sockets["amina"])
        assert [e["data"]["assigned_agent"] for e in amina_events if e["type"] == "conversation.updated"] == [
            people.baraka.pk
        ]
        baraka_events = await _drain(sockets["baraka"])
        assert "conversation.assigned" in {e["type"] for e in baraka_events}
    finally:
        for socket in sockets.values():
            await socket.disconnect()


async def test_catch_up_after_a_drop_returns_only_what_was_missed_and_visible(
    tenant_a: TenantSetup, people: People
) -> None:
    socket = await _open(tenant_a, people.amina)
    first = await _conversation(tenant_a)
    await _in_tenant(
        tenant_a,
        lambda: event_publish(
            event_type="conversation.updated", data={"conversation": first.pk, "assigned_agent": None, "team": None}
        ),
    )
    seen = await _drain(socket)
    last_id = seen[-1]["id"]
    assert last_id
    await socket.disconnect()

    # While she is away: one event she may see, one she may not (Baraka's), one for Baraka only.
    missed = await _conversation(tenant_a)
    hidden = await _conversation(tenant_a)

    def while_away() -> None:
        event_publish(
            event_type="message.created", data={"conversation": missed.pk, "assigned_agent": None, "team": None}
        )
        event_publish(
            event_type="message.created",
            data={"conversation": hidden.pk, "assigned_agent": people.baraka.pk, "team": None},
        )
        event_publish(event_type="conversation.assigned", data={"conversation": hidden.pk}, user_id=people.baraka.pk)

    await _in_tenant(tenant_a, while_away)
    socket = await _open(tenant_a, people.amina)
    try:
        await socket.send_json_to({"type": "catch_up", "since": last_id})
        replay = await _drain(socket)
        assert [(e["type"], e["data"].get("conversation")) for e in replay if e.get("replayed")] == [
            ("message.created", missed.pk)
        ]
        assert replay[-1] == {"type": "caught_up", "data": {"count": 1, "truncated": False}}
        await socket.send_json_to({"type": "catch_up", "since": "not-an-id"})
        assert (await _drain(socket)) == [{"type": "caught_up", "data": {"count": 0, "truncated": False}}]
    finally:
        await socket.disconnect()


async def test_typing_reaches_colleagues_who_see_the_conversation(tenant_a: TenantSetup, people: People) -> None:
    general = await _conversation(tenant_a)
    amina = await _open(tenant_a, people.amina)
    baraka = await _open(tenant_a, people.baraka)
    editor = await _open(tenant_a, people.editor)
    try:
        await amina.send_json_to({"type": "typing", "conversation": general.pk})
        typing = [e for e in await _drain(baraka) if e["type"] == "agent.typing"]
        assert [e["data"]["agent"] for e in typing] == [people.amina.pk]
        assert [e for e in await _drain(editor) if e["type"] == "agent.typing"] == []
        # Typing in a conversation she cannot see is ignored.
        private = await _conversation(tenant_a)
        await _in_tenant(tenant_a, lambda: conversation_takeover(conversation=private, agent=people.baraka))
        await _drain(baraka)
        await asyncio.sleep(2.1)  # typing notices are throttled per socket
        await editor.send_json_to({"type": "typing", "conversation": general.pk})
        await amina.send_json_to({"type": "typing", "conversation": private.pk})
        assert [e for e in await _drain(baraka) if e["type"] == "agent.typing"] == []
    finally:
        for socket in (amina, baraka, editor):
            await socket.disconnect()


def _outbound(conversation: Conversation | None, tenant: TenantSetup, tag: str) -> OutboxMessage:
    """An outgoing send (in `conversation`, or a broadcast when None) that WhatsApp confirmed."""
    row = OutboxMessage.objects.create(
        account=tenant.whatsapp,
        to_wa_id="254700000001",
        kind="text",
        payload={"type": "text"},
        idempotency_key=f"watch-{tag}-{next(_numbers)}",
        status=OutboxMessage.Status.SENT,
        wamid=f"wamid.watch.{tag}.{next(_numbers)}",
        delivery_status=OutboxMessage.Delivery.DELIVERED,
    )
    if conversation is not None:
        Message.objects.create(
            conversation=conversation,
            direction=Message.Direction.OUTBOUND,
            author_kind=Message.Author.AGENT,
            type="text",
            text="Your order left the warehouse",
            outbox=row,
            sent_at=timezone.now(),
        )
    return row


async def test_ticks_and_ticket_changes_reach_only_the_sockets_with_the_conversation_open(
    tenant_a: TenantSetup, people: People
) -> None:
    """Delivery ticks and ticket changes feed the open conversation's pane only: they go to the
    sockets that watch that conversation, and watching never widens what a person may see."""
    mine = await _conversation(tenant_a)
    other = await _conversation(tenant_a)
    await _in_tenant(tenant_a, lambda: conversation_takeover(conversation=mine, agent=people.amina))
    amina = await _open(tenant_a, people.amina)
    baraka = await _open(tenant_a, people.baraka)
    manager = await _open(tenant_a, people.manager)
    manager_elsewhere = await _open(tenant_a, people.manager)
    try:
        await amina.send_json_to({"type": "watch", "conversation": mine.pk})
        await baraka.send_json_to({"type": "watch", "conversation": mine.pk})  # not his: still nothing
        await manager.send_json_to({"type": "watch", "conversation": mine.pk})
        await manager_elsewhere.send_json_to({"type": "watch", "conversation": other.pk})
        for socket in (amina, baraka, manager, manager_elsewhere):
            await _drain(socket, timeout=0.3)

        def publish() -> None:
            outbox_status_publish(_outbound(mine, tenant_a, "mine"))
            outbox_status_publish(_outbound(None, tenant_a, "broadcast"))
            event_publish(event_type="ticket.updated", data={"ticket": 7, "status": "open", "conversations": [mine.pk]})
            event_publish(event_type="ticket.risk", data={"ticket": 8, "risk_score": 40, "conversations": [other.pk]})

        await _in_tenant(tenant_a, publish)
        heard = {name: await _drain(s) for name, s in {"amina": amina, "baraka": baraka, "manager": manager}.items()}
        for name in ("amina", "manager"):
            statuses = [e for e in heard[name] if e["type"] == "message.status"]
            assert [(e["data"]["conversation"], e["data"]["status"]) for e in statuses] == [(mine.pk, "delivered")]
            assert statuses[0]["data"]["assigned_agent"] == people.amina.pk
            assert [e["data"]["ticket"] for e in heard[name] if e["type"].startswith("ticket.")] == [7]
        assert heard["baraka"] == []
        assert [(e["type"], e["data"]["ticket"]) for e in await _drain(manager_elsewhere)] == [("ticket.risk", 8)]

        # Closing the conversation (or opening none) stops them.
        await amina.send_json_to({"type": "watch", "conversation": None})
        await _drain(amina, timeout=0.3)
        await _in_tenant(tenant_a, lambda: outbox_status_publish(_outbound(mine, tenant_a, "after")))
        assert await _drain(amina) == []
        assert [e["type"] for e in await _drain(manager)] == ["message.status"]
    finally:
        for socket in (amina, baraka, manager, manager_elsewhere):
            await socket.disconnect()
        await _in_tenant(tenant_a, lambda: OutboxMessage.objects.filter(idempotency_key__startswith="watch-").delete())


async def test_the_bots_replies_reach_the_inboxes_live(tenant_a: TenantSetup, people: People) -> None:
    general = await _conversation(tenant_a)

    def bot_replies() -> None:
        ServiceWindow.objects.filter(pk=general.window_id).update(expires_at=timezone.now() + timedelta(hours=1))
        conversation = Conversation.objects.select_related("contact", "account").get(pk=general.pk)
        message_send(
            conversation=conversation,
            outgoing=wa.text("Your order left the warehouse this morning."),
            author_kind=Message.Author.BOT,
            idempotency_key=f"bot-live-{general.pk}",
        )

    amina = await _open(tenant_a, people.amina)
    editor = await _open(tenant_a, people.editor)
    try:
        await _in_tenant(tenant_a, bot_replies)
        created = [e["data"] for e in await _drain(amina) if e["type"] == "message.created"]
        assert [(d["conversation"], d["author"], d["preview"]) for d in created] == [
            (general.pk, "bot", "Your order left the warehouse this morning.")
        ]
        assert await _drain(editor) == []
    finally:
        for socket in (amina, editor):
            await socket.disconnect()
        await _in_tenant(
            tenant_a, lambda: OutboxMessage.objects.filter(idempotency_key__startswith="bot-live-").delete()
        )


async def test_another_tenant_hears_nothing(tenant_a: TenantSetup, tenant_b: TenantSetup, people: People) -> None:
    admin_b = await database_sync_to_async(_admin)(tenant_b)
    other = await _open(tenant_b, admin_b)
    try:
        general = await _conversation(tenant_a)
        await _in_tenant(tenant_a, lambda: conversation_takeover(conversation=general, agent=people.amina))
        assert await _drain(other) == []
    finally:
        await other.disconnect()


def _admin(tenant: TenantSetup) -> User:
    with tenant_context(tenant.organization):
        return User.objects.get(email=tenant.admin_email)


@pytest.mark.django_db
def test_the_event_rule_and_the_query_rule_agree(tenant_a: TenantSetup) -> None:
    """`viewer_can_see` (events) and `conversation_visibility_q` (queries) are one rule."""
    with tenant_context(tenant_a.organization):
        team = Team.objects.create(name="Agreement")
        users = [
            user_create(email=f"agree-{role}@alpha.test", password=None, role=role)
            for role in (AGENT, SUPPORT_MANAGER, KNOWLEDGE_EDITOR)
        ]
        team.members.add(users[0])
        other = user_create(email="agree-other@alpha.test", password=None, role=AGENT)
        conversations = []
        for assigned in (None, users[0], other):
            for conversation_team in (None, team):
                contact = Contact.objects.create(wa_id=f"2547{next(_numbers):08d}")
                conversations.append(
                    conversation_create(
                        contact=contact,
                        account=tenant_a.whatsapp,
                        team=conversation_team,
                        assigned_agent=assigned,
                        status="assigned" if assigned else "waiting",
                    )
                )
        for user in users:
            viewer = viewer_for(user=user)
            by_query = set(
                conversation_list_for_user(user=user)
                .filter(pk__in=[c.pk for c in conversations])
                .values_list("pk", flat=True)
            )
            by_rule = {
                c.pk
                for c in conversations
                if viewer_can_see(viewer, assigned_agent_id=c.assigned_agent_id, team_id=c.team_id)
            }
            assert by_query == by_rule, user.email


async def test_the_older_events_socket_applies_the_same_rule(tenant_a: TenantSetup, people: People) -> None:
    """/ws/events/ must not carry conversation previews to a Knowledge Editor either."""

    async def events_socket(user: User) -> WebsocketCommunicator:
        def build() -> WebsocketCommunicator:
            key = session_key_for(tenant_a.schema, user)
            headers = [
                (b"host", tenant_a.domain.encode()),
                (b"origin", f"http://{tenant_a.domain}".encode()),
                (b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode()),
            ]
            return WebsocketCommunicator(application, "/ws/events/", headers=headers)

        socket: WebsocketCommunicator = await database_sync_to_async(build)()
        ok, _code = await socket.connect()
        assert ok
        assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
        return socket

    editor = await events_socket(people.editor)
    manager = await events_socket(people.manager)
    try:
        general = await _conversation(tenant_a)
        for socket in (editor, manager):  # both open it; the editor's request is refused
            await socket.send_json_to({"type": "watch", "conversation": general.pk})

        def publish() -> None:
            event_publish(
                event_type="message.created",
                data={"conversation": general.pk, "assigned_agent": None, "team": None, "preview": "my card number"},
            )
            event_publish(
                event_type="ticket.updated", data={"ticket": 1, "status": "open", "conversations": [general.pk]}
            )

        await _in_tenant(tenant_a, publish)
        assert {e["type"] for e in await _drain(manager)} == {"message.created", "ticket.updated"}
        assert await _drain(editor) == []
    finally:
        await editor.disconnect()
        await manager.disconnect()


async def test_delivering_events_costs_no_database_query(
    tenant_a: TenantSetup, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fan-out to hundreds of sockets must never wait on the database (benchmarks/inbox_fanout.py)."""
    from django.db.backends import utils

    queries: list[str] = []
    execute = utils.CursorWrapper.execute

    def counting(self: Any, sql: str, params: Any = None) -> Any:
        queries.append(sql)  # any thread: the sockets' own database work runs on worker threads
        return execute(self, sql, params)

    sockets = [await _open(tenant_a, user) for user in (people.manager, people.amina, people.baraka)]
    try:
        conversation = await _conversation(tenant_a)
        monkeypatch.setattr(utils.CursorWrapper, "execute", counting)
        for i in range(5):
            await database_sync_to_async(event_publish)(
                event_type="conversation.updated",
                data={"conversation": conversation.pk, "assigned_agent": None, "team": None, "n": i},
                schema_name=tenant_a.schema,
            )
        for socket in sockets:
            got = [e["data"]["n"] for e in await _drain(socket) if e["type"] == "conversation.updated"]
            assert got == [0, 1, 2, 3, 4]
        assert queries == []
    finally:
        for socket in sockets:
            await socket.disconnect()


def test_an_event_frame_is_encoded_once_per_tenant_and_event() -> None:
    from apps.core.consumers import event_frame

    # Stream ids are per tenant: two tenants' events may carry the same id.
    alpha = {"event": "message.created", "id": "1700000000000-0", "schema": "alpha", "data": {"preview": "A"}}
    beta = {"event": "message.created", "id": "1700000000000-0", "schema": "beta", "data": {"preview": "B"}}
    assert '"preview": "A"' in event_frame(alpha)
    assert '"preview": "B"' in event_frame(beta)
    assert event_frame(dict(alpha)) is event_frame(alpha)  # the same text for every socket
    unrecorded = {"event": "x", "id": "", "schema": "alpha", "data": {"v": 1}}
    assert event_frame(unrecorded) == '{"type": "x", "id": "", "data": {"v": 1}}'
