"""Conversation lifecycle, auto-assignment with capacity and languages, and the visibility rule."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import AgentProfile, Team, User
from apps.accounts.roles import ADMIN, AGENT, KNOWLEDGE_EDITOR, SUPPORT_MANAGER
from apps.accounts.services import user_create
from apps.contacts.models import Contact
from apps.conversations.assignment import assignment_queue_drain
from apps.conversations.exceptions import ConversationActionDenied, ConversationNotFound, ConversationTransitionInvalid
from apps.conversations.lifecycle import (
    conversation_assign,
    conversation_close,
    conversation_handoff,
    conversation_reopen_on_inbound,
    conversation_resolve,
    conversation_return_to_bot,
    conversation_snooze,
    conversation_takeover,
    conversation_update,
    conversations_unsnooze_due,
)
from apps.conversations.models import Conversation, ConversationEvent
from apps.conversations.selectors import (
    contact_history_for_user,
    conversation_get_for_user,
    conversation_list_for_user,
)
from apps.conversations.tests.factories import conversation_create
from apps.core.tenancy import tenant_context
from tests.conftest import TenantSetup

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)


@dataclass
class Team_:
    manager: User
    amina: User
    baraka: User
    editor: User
    sales: Team


def _user(role: str, *, online: bool = True, languages: list[str] | None = None, max_chats: int = 5) -> User:
    user = user_create(
        email=f"{role.lower().replace(' ', '-')}-{next(_numbers)}@example.test", password=None, role=role
    )
    AgentProfile.objects.filter(user=user).update(
        status=AgentProfile.Status.ONLINE if online else AgentProfile.Status.OFFLINE,
        languages=languages or [],
        max_concurrent_chats=max_chats,
    )
    return User.objects.get(pk=user.pk)


def _conversation(tenant: TenantSetup, *, language: str = "", team: Team | None = None) -> Conversation:
    contact = Contact.objects.create(wa_id=f"2547{next(_numbers):08d}", profile_name="Customer")
    return conversation_create(
        contact=contact,
        account=tenant.whatsapp,
        language=language,
        team=team,
        last_message_at=timezone.now(),
    )


@pytest.fixture
def people(tenant_a: TenantSetup) -> Iterator[Team_]:
    with tenant_context(tenant_a.organization):
        sales = Team.objects.create(name=f"Sales {next(_numbers)}")
        people = Team_(
            manager=_user(SUPPORT_MANAGER),
            amina=_user(AGENT, languages=["en", "sw"], max_chats=2),
            baraka=_user(AGENT, languages=["fr"], max_chats=2),
            editor=_user(KNOWLEDGE_EDITOR),
            sales=sales,
        )
        sales.members.add(people.amina)
        yield people


def _kinds(conversation: Conversation) -> list[str]:
    return list(conversation.events.order_by("id").values_list("kind", flat=True))


# --- transitions --------------------------------------------------------------------------


def test_handoff_takeover_resolve_reopen_with_an_audit_trail(tenant_a: TenantSetup, people: Team_) -> None:
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)  # nobody free: it waits
        conversation = _conversation(tenant_a)
        conversation = conversation_handoff(conversation=conversation, reason="customer asked for a person")
        assert conversation.status == "waiting"
        assert conversation.waiting_since is not None

        conversation = conversation_takeover(conversation=conversation, agent=people.amina)
        assert (conversation.status, conversation.assigned_agent) == ("assigned", people.amina)

        conversation = conversation_resolve(conversation=conversation, by=people.amina, reason="answered")
        assert conversation.status == "resolved" and conversation.resolved_at is not None

        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        conversation_reopen_on_inbound(conversation=locked)
        conversation.refresh_from_db()
        assert (conversation.status, conversation.assigned_agent) == ("assigned", people.amina)

        assert _kinds(conversation) == ["handoff", "takeover", "resolved", "reopened"]
        takeover = conversation.events.get(kind="takeover")
        assert (takeover.actor, takeover.from_status, takeover.to_status) == (people.amina, "waiting", "assigned")
        assert conversation.events.get(kind="handoff").reason == "customer asked for a person"


def test_return_to_bot_is_explicit_and_close_ends_it(tenant_a: TenantSetup, people: Team_) -> None:
    with tenant_context(tenant_a.organization):
        conversation = conversation_takeover(conversation=_conversation(tenant_a), agent=people.baraka)
        conversation = conversation_return_to_bot(conversation=conversation, by=people.baraka, reason="solved by menu")
        assert (conversation.status, conversation.assigned_agent) == ("bot", None)
        with pytest.raises(ConversationTransitionInvalid):
            conversation_return_to_bot(conversation=conversation, by=people.baraka)
        conversation = conversation_close(conversation=conversation, by=people.manager)
        assert conversation.status == "closed"
        with pytest.raises(ConversationTransitionInvalid) as refused:
            conversation_takeover(conversation=conversation, agent=people.amina)
        assert refused.value.extra["status"] == "closed"


def test_roles_limit_what_people_may_do(tenant_a: TenantSetup, people: Team_) -> None:
    with tenant_context(tenant_a.organization):
        conversation = conversation_takeover(conversation=_conversation(tenant_a), agent=people.amina)
        # An agent cannot take a colleague's conversation, nor assign; an editor cannot respond.
        with pytest.raises(ConversationActionDenied):
            conversation_takeover(conversation=conversation, agent=people.baraka)
        with pytest.raises(ConversationActionDenied):
            conversation_assign(conversation=conversation, agent=people.baraka, by=people.amina)
        with pytest.raises(ConversationActionDenied):
            conversation_takeover(conversation=_conversation(tenant_a), agent=people.editor)
        with pytest.raises(ConversationActionDenied):
            conversation_resolve(conversation=conversation, by=people.baraka)
        # A manager reassigns.
        conversation = conversation_assign(conversation=conversation, agent=people.baraka, by=people.manager)
        assert conversation.assigned_agent == people.baraka
        event = conversation.events.get(kind="assigned")
        assert event.data == {"agent": people.baraka.pk, "previous_agent": people.amina.pk}
        assert event.actor == people.manager


def test_snooze_until_a_time_or_the_next_message(tenant_a: TenantSetup, people: Team_) -> None:
    with tenant_context(tenant_a.organization):
        timed = conversation_takeover(conversation=_conversation(tenant_a), agent=people.amina)
        conversation_snooze(conversation=timed, by=people.amina, until=timezone.now() + timedelta(hours=1))
        until_reply = conversation_snooze(conversation=_conversation(tenant_a), by=people.amina, until=None)
        with pytest.raises(ConversationTransitionInvalid):
            conversation_snooze(conversation=timed, by=people.amina, until=timezone.now() - timedelta(minutes=1))
        assert conversations_unsnooze_due() == 0
        Conversation.objects.filter(pk=timed.pk).update(snoozed_until=timezone.now() - timedelta(seconds=1))
        assert conversations_unsnooze_due() == 1
        assert not Conversation.objects.get(pk=timed.pk).is_snoozed
        assert Conversation.objects.get(pk=until_reply.pk).is_snoozed  # no time: only a message ends it
        locked = Conversation.objects.select_for_update().get(pk=until_reply.pk)
        conversation_reopen_on_inbound(conversation=locked)
        assert not Conversation.objects.get(pk=until_reply.pk).is_snoozed


def test_priority_team_and_tags_are_audited(tenant_a: TenantSetup, people: Team_) -> None:
    with tenant_context(tenant_a.organization):
        conversation = _conversation(tenant_a)
        conversation = conversation_update(
            conversation=conversation, by=people.manager, priority="urgent", team=people.sales, tags=["VIP", " refund "]
        )
        assert (conversation.priority, conversation.team, conversation.tags) == (
            "urgent",
            people.sales,
            ["refund", "vip"],
        )
        assert sorted(_kinds(conversation)) == ["priority", "tags", "team"]
        with pytest.raises(ConversationActionDenied):  # moving between teams is a manager's call
            conversation_update(conversation=conversation, by=people.amina, team=None)


# --- automatic assignment -----------------------------------------------------------------


def test_auto_assignment_respects_language_capacity_and_queues(tenant_a: TenantSetup, people: Team_) -> None:
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.filter(user=people.manager).update(status=AgentProfile.Status.OFFLINE)
        french = conversation_handoff(conversation=_conversation(tenant_a, language="fr"), reason="test")
        assert french.assigned_agent == people.baraka  # the only one who speaks French

        swahili = [
            conversation_handoff(conversation=_conversation(tenant_a, language="sw"), reason="test") for _ in range(3)
        ]
        # Amina speaks Swahili and holds at most two chats: the third waits in the queue.
        assert [c.status for c in swahili] == ["assigned", "assigned", "waiting"]
        assert {c.assigned_agent for c in swahili[:2]} == {people.amina}
        assert swahili[2].events.filter(kind="assigned").count() == 0

        # Capacity frees up: the queue drains to her.
        conversation_resolve(conversation=swahili[0], by=people.amina)
        assert assignment_queue_drain() == 1
        assert Conversation.objects.get(pk=swahili[2].pk).assigned_agent == people.amina
        auto = Conversation.objects.get(pk=swahili[2].pk).events.get(kind="assigned")
        assert auto.actor is None and auto.reason == "automatic assignment"


@pytest.mark.parametrize("meanwhile", ["takeover", "resolve"])
def test_automatic_assignment_never_overrides_what_happened_while_it_chose(
    tenant_a: TenantSetup, people: Team_, monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    """The choice is made on an unlocked read: a takeover or resolve may land before the assign."""
    from apps.conversations import assignment

    with tenant_context(tenant_a.organization):
        AgentProfile.objects.filter(user__in=[people.manager, people.baraka]).update(status=AgentProfile.Status.OFFLINE)
        conversation = _conversation(tenant_a, language="en")
        Conversation.objects.filter(pk=conversation.pk).update(
            status=Conversation.Status.WAITING, waiting_since=timezone.now()
        )
        choose = assignment.agent_choose

        def choose_while_a_colleague_acts(target: Conversation) -> User | None:
            chosen = choose(target)  # Amina, the only English speaker online
            if meanwhile == "takeover":
                conversation_takeover(conversation=target, agent=people.baraka)
            else:
                conversation_resolve(conversation=target, by=people.manager)
            return chosen

        monkeypatch.setattr(assignment, "agent_choose", choose_while_a_colleague_acts)
        assert assignment.conversation_assign_auto(conversation=conversation) is None
        after = Conversation.objects.get(pk=conversation.pk)
        if meanwhile == "takeover":
            assert (after.status, after.assigned_agent) == ("assigned", people.baraka)
        else:
            assert (after.status, after.assigned_agent) == ("resolved", None)
        assert after.events.filter(kind="assigned").count() == 0


def test_automatic_assignment_only_takes_a_waiting_unassigned_conversation(
    tenant_a: TenantSetup, people: Team_
) -> None:
    with tenant_context(tenant_a.organization):
        for status in ("bot", "assigned", "resolved"):
            conversation = _conversation(tenant_a, language="en")
            Conversation.objects.filter(pk=conversation.pk).update(
                status=status, assigned_agent=people.baraka if status == "assigned" else None
            )
            with pytest.raises(ConversationTransitionInvalid):
                conversation_assign(conversation=conversation, agent=people.amina, by=None)
        # A person may still move an assigned conversation to a colleague.
        moved = conversation_assign(conversation=conversation, agent=people.amina, by=people.manager)
        assert moved.assigned_agent == people.amina


def test_least_loaded_and_round_robin_within_a_team(tenant_a: TenantSetup, people: Team_) -> None:
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
        zawadi = _user(AGENT, max_chats=10)
        people.sales.members.add(zawadi)
        AgentProfile.objects.filter(user=people.amina).update(
            status=AgentProfile.Status.ONLINE, max_concurrent_chats=10
        )
        assigned = [
            conversation_handoff(conversation=_conversation(tenant_a, team=people.sales), reason="t").assigned_agent
            for _ in range(4)
        ]
        assert sorted(a.pk for a in assigned if a) == sorted([people.amina.pk, people.amina.pk, zawadi.pk, zawadi.pk])

        people.sales.assignment = Team.Assignment.ROUND_ROBIN
        people.sales.save()
        order = [
            conversation_handoff(conversation=_conversation(tenant_a, team=people.sales), reason="t").assigned_agent
            for _ in range(4)
        ]
        assert order[0] != order[1] and order[0] == order[2] and order[1] == order[3]

        people.sales.assignment = Team.Assignment.MANUAL
        people.sales.save()
        manual = conversation_handoff(conversation=_conversation(tenant_a, team=people.sales), reason="t")
        assert manual.status == "waiting"


def test_offline_agents_and_other_teams_get_nothing(tenant_a: TenantSetup, people: Team_) -> None:
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.filter(user=people.amina).update(status=AgentProfile.Status.OFFLINE)
        # Baraka is online but not in Sales: a Sales conversation waits for Amina.
        waiting = conversation_handoff(conversation=_conversation(tenant_a, team=people.sales), reason="t")
        assert waiting.status == "waiting"
        AgentProfile.objects.filter(user=people.amina).update(status=AgentProfile.Status.ONLINE)
        assert assignment_queue_drain() == 1
        assert Conversation.objects.get(pk=waiting.pk).assigned_agent == people.amina


# --- visibility -----------------------------------------------------------------------------


def test_who_sees_what(tenant_a: TenantSetup, people: Team_) -> None:
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
        mine = conversation_takeover(conversation=_conversation(tenant_a), agent=people.amina)
        theirs = conversation_takeover(conversation=_conversation(tenant_a), agent=people.baraka)
        sales_queue = conversation_handoff(conversation=_conversation(tenant_a, team=people.sales), reason="t")
        general_queue = conversation_handoff(conversation=_conversation(tenant_a), reason="t")
        bot = _conversation(tenant_a)

        def visible(user: User) -> set[int]:
            return set(conversation_list_for_user(user=user).values_list("pk", flat=True))

        assert visible(people.amina) == {mine.pk, sales_queue.pk, general_queue.pk, bot.pk}
        assert visible(people.baraka) == {theirs.pk, general_queue.pk, bot.pk}
        assert visible(people.manager) >= {mine.pk, theirs.pk, sales_queue.pk, general_queue.pk, bot.pk}
        assert visible(people.editor) == set()
        admin = User.objects.get(email=tenant_a.admin_email)
        assert visible(admin) >= visible(people.manager)
        with pytest.raises(ConversationNotFound):
            conversation_get_for_user(user=people.baraka, conversation_id=mine.pk)
        # Serving a customer opens that customer's history, whoever handled it.
        assert list(contact_history_for_user(user=people.baraka, contact_id=mine.contact_id)) == []
        assert [c.pk for c in contact_history_for_user(user=people.amina, contact_id=mine.contact_id)] == [mine.pk]
        assert ConversationEvent.objects.filter(conversation=mine).exists()


def test_the_list_takes_a_constant_number_of_queries(tenant_a: TenantSetup, people: Team_) -> None:
    with tenant_context(tenant_a.organization):
        for _ in range(3):
            conversation_takeover(conversation=_conversation(tenant_a), agent=people.amina)

        def fetch() -> int:
            with CaptureQueriesContext(connection) as queries:
                rows: list[Any] = [
                    (c.contact.wa_id, c.assigned_agent and c.assigned_agent.email, c.team)
                    for c in conversation_list_for_user(user=people.amina)
                ]
                assert rows
            return len(queries)

        few = fetch()
        for _ in range(5):
            conversation_takeover(conversation=_conversation(tenant_a), agent=people.amina)
        assert fetch() == few


def test_another_tenant_sees_none_of_it(tenant_a: TenantSetup, tenant_b: TenantSetup, people: Team_) -> None:
    with tenant_context(tenant_a.organization):
        conversation = conversation_takeover(conversation=_conversation(tenant_a), agent=people.amina)
        wa_id = conversation.contact.wa_id
    with tenant_context(tenant_b.organization):
        admin_b = User.objects.get(email=tenant_b.admin_email)
        assert admin_b.email != tenant_a.admin_email
        assert not conversation_list_for_user(user=admin_b).filter(contact__wa_id=wa_id).exists()
        assert ADMIN in set(admin_b.groups.values_list("name", flat=True))
