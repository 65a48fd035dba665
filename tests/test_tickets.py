"""Tickets from hand-offs, history and merging, SLA pause/resume and sweep, risk, rules, CSAT, API."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.accounts.models import AgentProfile, User
from apps.accounts.roles import AGENT, SUPPORT_MANAGER
from apps.accounts.services import user_create
from apps.contacts.models import Contact
from apps.contacts.services import contact_consent_set
from apps.conversations.lifecycle import (
    conversation_assign,
    conversation_handoff,
    conversation_resolve,
    conversation_takeover,
)
from apps.conversations.models import Conversation, Message
from apps.conversations.services import inbound_message_record
from apps.conversations.tests.factories import conversation_create, message_inbound_create
from apps.core.tenancy import tenant_context
from apps.tickets.models import CsatSurvey, EscalationRule, EscalationRuleFiring, SLAPolicy, Ticket
from apps.tickets.receivers import message_analysed_received
from apps.tickets.selectors import csat_summary, tickets_sla_check_due
from apps.tickets.services.risk import RiskInputs, risk_score_compute
from apps.tickets.services.rules import escalation_rules_apply
from apps.tickets.services.sla import ticket_sla_check
from apps.tickets.services.tickets import ticket_create, ticket_merge, ticket_update
from apps.tickets.tasks import tickets_sla_sweep_task
from apps.whatsapp.models import MessageTemplate, OutboxMessage
from apps.whatsapp.outbox import outbox_deliver
from apps.whatsapp.payloads import InboundMessage, Reply
from tests.conftest import TenantSetup
from tests.fakes.graph_api import FakeGraphApi

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)
Capture = Callable[..., Any]


def _user(role: str) -> User:
    user = user_create(email=f"tickets-{next(_numbers)}@example.test", password=None, role=role)
    AgentProfile.objects.filter(user=user).update(status=AgentProfile.Status.OFFLINE)
    return User.objects.get(pk=user.pk)


def _conversation(tenant: TenantSetup, *, window_open: bool = True, **fields: Any) -> Conversation:
    window = timezone.now() + (timedelta(hours=5) if window_open else -timedelta(hours=1))
    contact = Contact.objects.create(wa_id=f"2547{next(_numbers):08d}", profile_name="Neema", language="en")
    return conversation_create(
        contact=contact, account=tenant.whatsapp, last_message_at=timezone.now(), window_expires_at=window, **fields
    )


def _inbound(conversation: Conversation, text: str, **fields: Any) -> Message:
    return message_inbound_create(conversation=conversation, text=text, **fields)


def _policy(priority: str = "medium", **fields: Any) -> SLAPolicy:
    SLAPolicy.objects.filter(priority=priority).update(is_active=False)
    defaults: dict[str, Any] = {"first_response_minutes": 60, "next_response_minutes": 30, "resolution_minutes": 480}
    defaults.update(fields)
    return SLAPolicy.objects.create(name=f"{priority} {next(_numbers)}", priority=priority, **defaults)


# --- tickets ------------------------------------------------------------------------------


def test_a_handoff_opens_one_ticket_written_from_the_conversation(
    tenant_a: TenantSetup, django_capture_on_commit_callbacks: Capture
) -> None:
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
        conversation = _conversation(tenant_a, priority="high")
        _inbound(conversation, "My parcel has not arrived after two weeks.", intent="order_status")
        _inbound(conversation, "I want to talk to a person now.", intent="human_request")
        with django_capture_on_commit_callbacks(execute=True):
            conversation_handoff(conversation=conversation, reason="customer asked for a person")
        with django_capture_on_commit_callbacks(execute=True):  # asking twice: still one ticket
            conversation_handoff(conversation=conversation, reason="again")
        ticket = Ticket.objects.get(conversations=conversation)
        assert ticket.source == "handoff" and ticket.priority == "high" and ticket.status == "new"
        assert ticket.title.startswith("Human request: My parcel")
        assert "Intent: human_request" in ticket.description
        assert "Hand-off reason: customer asked for a person" in ticket.description
        assert list(ticket.events.values_list("kind", flat=True)) == ["created"]


def test_the_ticket_follows_its_conversation_to_the_agent_who_takes_it(
    tenant_a: TenantSetup, django_capture_on_commit_callbacks: Capture
) -> None:
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)  # nobody auto-assigned
        manager, amina, baraka, other = _user(SUPPORT_MANAGER), _user(AGENT), _user(AGENT), _user(AGENT)
        conversation = _conversation(tenant_a)
        _inbound(conversation, "I need a person please.", intent="human_request")
        with django_capture_on_commit_callbacks(execute=True):
            conversation_handoff(conversation=conversation, reason="asked for a person")
        ticket = Ticket.objects.get(conversations=conversation)
        assert ticket.assignee_id is None

        with django_capture_on_commit_callbacks(execute=True):
            conversation_takeover(conversation=conversation, agent=amina)
        ticket.refresh_from_db()
        assert ticket.assignee_id == amina.pk
        change = ticket.events.get(kind="changed")
        assert change.actor is None and change.changes == {"assignee": {"from": None, "to": amina.pk}}

        with django_capture_on_commit_callbacks(execute=True):  # a manager's reassignment moves it too
            conversation_assign(conversation=conversation, agent=baraka, by=manager)
        ticket.refresh_from_db()
        assert ticket.assignee_id == baraka.pk

        # A ticket a manager gave to someone else stays with that person.
        ticket = ticket_update(ticket=ticket, by=manager, assignee=other)
        with django_capture_on_commit_callbacks(execute=True):
            conversation_assign(conversation=conversation, agent=amina, by=manager)
        ticket.refresh_from_db()
        assert ticket.assignee_id == other.pk


def test_changes_are_audited_and_duplicates_merge(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        manager, agent = _user(SUPPORT_MANAGER), _user(AGENT)
        first = ticket_create(title="Refund", by=manager, conversations=[_conversation(tenant_a)], tags=["billing"])
        duplicate = ticket_create(
            title="Refund again", by=agent, priority="urgent", conversations=[_conversation(tenant_a)], tags=["vip"]
        )
        first = ticket_update(ticket=first, by=manager, status="open", assignee=agent, note="taking it")
        changed = first.events.get(kind="changed")
        assert changed.actor == manager and changed.note == "taking it"
        assert changed.changes == {"assignee": {"from": None, "to": agent.pk}, "status": {"from": "new", "to": "open"}}

        merged = ticket_merge(source=duplicate, target=first, by=manager)
        duplicate.refresh_from_db()
        assert (duplicate.status, duplicate.merged_into_id) == ("closed", first.pk)
        assert merged.conversations.count() == 2
        assert merged.tags == ["billing", "vip"] and merged.priority == "urgent"
        assert merged.events.filter(kind="merged").exists()


# --- SLA ----------------------------------------------------------------------------------


def test_the_clock_pauses_while_pending_and_resumes_on_the_customers_reply(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _policy("medium")
        agent = _user(AGENT)
        conversation = _conversation(tenant_a)
        ticket = ticket_create(title="Broken phone", by=agent, conversations=[conversation])
        due = ticket.first_response_due_at
        assert due is not None and abs((due - ticket.created) - timedelta(minutes=60)) < timedelta(seconds=1)

        ticket = ticket_update(ticket=ticket, by=agent, status="pending")
        assert ticket.sla_paused_at is not None
        # Pretend the ticket waited on the customer for 30 minutes.
        Ticket.objects.filter(pk=ticket.pk).update(sla_paused_at=timezone.now() - timedelta(minutes=30))
        ticket.refresh_from_db()
        assert ticket_sla_check(ticket_id=ticket.pk, now=due + timedelta(minutes=1)) == []  # paused: no breach

        from apps.tickets.services.tickets import ticket_agent_replied, ticket_customer_wrote

        ticket = ticket_customer_wrote(ticket=ticket, message=_inbound(conversation, "Any news?"))
        assert ticket.status == "open" and ticket.sla_paused_at is None
        assert abs(ticket.sla_paused_seconds - 1800) < 5
        assert ticket.first_response_due_at is not None
        assert abs((ticket.first_response_due_at - due) - timedelta(minutes=30)) < timedelta(seconds=5)
        assert ticket.events.filter(kind="changed", note="customer replied").exists()

        # Paused again (10 minutes on hold), and the agent's first answer comes during that
        # pause: 40 paused minutes came before the first response, for the SLA report.
        ticket = ticket_update(ticket=ticket, by=agent, status="on_hold")
        Ticket.objects.filter(pk=ticket.pk).update(sla_paused_at=timezone.now() - timedelta(minutes=10))
        ticket.refresh_from_db()
        reply = Message.objects.create(
            conversation=conversation,
            direction="out",
            author_kind="agent",
            type="text",
            text="On it",
            sent_at=timezone.now(),
        )
        ticket = ticket_agent_replied(ticket=ticket, message=reply)
        assert ticket.first_responded_at == reply.sent_at
        assert abs(ticket.first_response_paused_seconds - 2400) < 5


def test_the_sweep_records_at_risk_and_breaches_once(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _policy("low", first_response_minutes=10, resolution_minutes=100)
        ticket = ticket_create(title="Slow", by=None, priority="low")
        assert ticket.first_response_due_at is not None and ticket.resolution_risk_at is not None
        # 85 minutes later: first response breached, resolution at risk (80 of 100 minutes used).
        later = ticket.created + timedelta(minutes=85)
        assert ticket.pk in tickets_sla_check_due(now=later)
        kinds = {(e.metric, e.kind) for e in ticket_sla_check(ticket_id=ticket.pk, now=later)}
        assert kinds == {("first_response", "breached"), ("resolution", "at_risk")}
        assert ticket_sla_check(ticket_id=ticket.pk, now=later) == []
        assert ticket.pk not in tickets_sla_check_due(now=later)
        ticket.refresh_from_db()
        assert ticket.sla_breached and ticket.risk_score >= 40
        assert ticket.risk_factors[0]["reason"].startswith("SLA breached")
        assert tickets_sla_sweep_task() >= 0  # the task runs the same check for the tenant


# --- risk ---------------------------------------------------------------------------------

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("inputs", "score", "reasons"),
    [
        ({}, 0, []),
        ({"next_due_at": NOW + timedelta(minutes=12)}, 40, ["SLA due in 12 min (+40)"]),
        ({"next_due_at": NOW + timedelta(minutes=31)}, 0, []),
        ({"next_due_at": NOW - timedelta(minutes=5)}, 40, ["SLA breached 5 min ago (+40)"]),
        ({"priority": "urgent"}, 25, ["Urgent priority (+25)"]),
        ({"unanswered_follow_ups": 3}, 0, []),
        ({"unanswered_follow_ups": 4}, 15, ["4 customer messages without an answer (+15)"]),
        ({"negative_streak": True}, 15, ["Negative sentiment streak (+15)"]),
        ({"last_activity_at": NOW - timedelta(hours=7, minutes=59)}, 0, []),
        ({"last_activity_at": NOW - timedelta(hours=9)}, 10, ["No update for 9 h (+10)"]),
        (
            {
                "next_due_at": NOW,
                "priority": "urgent",
                "unanswered_follow_ups": 6,
                "negative_streak": True,
                "last_activity_at": NOW - timedelta(days=1),
            },
            100,
            None,
        ),
    ],
)
def test_risk_score_factor_by_factor(inputs: dict[str, Any], score: int, reasons: list[str] | None) -> None:
    values: dict[str, Any] = {
        "now": NOW,
        "next_due_at": None,
        "priority": "medium",
        "unanswered_follow_ups": 0,
        "negative_streak": False,
        "last_activity_at": NOW,
    }
    values.update(inputs)
    computed, factors = risk_score_compute(RiskInputs(**values))
    assert computed == score
    if reasons is not None:
        assert [factor["reason"] for factor in factors] == reasons
    else:
        assert sum(factor["points"] for factor in factors) == 105  # capped at 100


def test_risk_counts_follow_ups_and_a_negative_streak(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        conversation = _conversation(tenant_a)
        ticket = ticket_create(title="Angry", by=None, conversations=[conversation], priority="urgent")
        for text in ["hello?", "anyone??", "this is terrible", "still waiting"]:
            _inbound(conversation, text, sentiment=-0.8)
        from apps.tickets.services.risk import ticket_risk_refresh

        ticket = ticket_risk_refresh(ticket=ticket)
        assert {f["factor"] for f in ticket.risk_factors} >= {"urgent", "frustration", "negative_sentiment"}
        assert ticket.risk_score >= 55


# --- escalation rules ---------------------------------------------------------------------


def test_rules_run_in_order_and_a_stop_rule_ends_the_run(
    tenant_a: TenantSetup, django_capture_on_commit_callbacks: Capture
) -> None:
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
        EscalationRule.objects.all().delete()
        tag = EscalationRule.objects.create(
            name="tag refunds", position=2, trigger="keyword", pattern="refund", action="tag", tag="refund"
        )
        urgent = EscalationRule.objects.create(
            name="VIP urgent",
            position=1,
            trigger="customer_value",
            field="lifetime_value",
            comparison="gte",
            value=10000,
            action="set_priority",
            priority="urgent",
        )
        escalate = EscalationRule.objects.create(
            name="angry",
            position=3,
            trigger="sentiment_below",
            sentiment_below=-0.5,
            action="escalate",
            stop_processing=True,
        )
        after_stop = EscalationRule.objects.create(
            name="after stop",
            position=4,
            trigger="keyword",
            pattern=r"ref+und",
            is_regex=True,
            action="tag",
            tag="late",
        )
        EscalationRule.objects.create(
            name="off", position=0, is_active=False, trigger="intent", intent="complaint", action="tag", tag="off"
        )

        conversation = _conversation(tenant_a)
        Contact.objects.filter(pk=conversation.contact_id).update(custom_fields={"lifetime_value": "12,500"})
        message = _inbound(conversation, "I want a REFUND, this is awful", sentiment=-0.9, intent="complaint")
        with django_capture_on_commit_callbacks(execute=True):
            firings = escalation_rules_apply(message=message)
        assert [f.rule_id for f in firings] == [urgent.pk, tag.pk, escalate.pk]
        assert after_stop.pk not in EscalationRuleFiring.objects.values_list("rule_id", flat=True)
        conversation.refresh_from_db()
        assert conversation.priority == "urgent" and conversation.tags == ["refund"]
        assert conversation.status == "waiting"
        ticket = Ticket.objects.get(conversations=conversation)
        assert firings[-1].ticket == ticket and firings[-1].result["action"] == "escalate"
        assert ticket.priority == "urgent" and ticket.source in ("rule", "handoff")
        assert escalation_rules_apply(message=message) == []  # a message fires each rule once


# --- CSAT ---------------------------------------------------------------------------------


def _rating_tap(tenant: TenantSetup, conversation: Conversation, reply_id: str) -> Message:
    inbound = InboundMessage(
        wamid=f"wamid.R{next(_numbers)}",
        from_wa_id=conversation.contact.wa_id,
        timestamp=timezone.now(),
        type="interactive",
        reply=Reply(kind="list_reply", id=reply_id, title="Good"),
    )
    message = inbound_message_record(account=tenant.whatsapp, inbound=inbound)
    assert message is not None
    return message


def test_csat_inside_the_window_is_an_interactive_list_and_the_tap_is_recorded(
    tenant_a: TenantSetup, graph_api: FakeGraphApi, django_capture_on_commit_callbacks: Capture
) -> None:
    with tenant_context(tenant_a.organization):
        agent = _user(AGENT)
        conversation = _conversation(tenant_a, status="assigned", assigned_agent=agent)
        with django_capture_on_commit_callbacks(execute=True):
            conversation_resolve(conversation=conversation, by=agent)
        survey = CsatSurvey.objects.get(conversation=conversation)
        assert survey.channel == "interactive" and survey.agent == agent
        assert survey.message is not None and survey.message.outbox is not None
        outbox_deliver(outbox_id=survey.message.outbox.pk)
        body = graph_api.sent_messages()[-1].body
        assert body["type"] == "interactive" and body["interactive"]["type"] == "list"
        rows = body["interactive"]["action"]["sections"][0]["rows"]
        assert [row["id"] for row in rows] == [f"csat:{survey.pk}:{n}" for n in (5, 4, 3, 2, 1)]

        tap = _rating_tap(tenant_a, conversation, f"csat:{survey.pk}:4")
        conversation.refresh_from_db()
        assert conversation.status == "resolved"  # a rating does not reopen the conversation
        message_analysed_received(tap)
        comment = _inbound(conversation, "Quick and friendly, thanks")
        message_analysed_received(comment)
        survey.refresh_from_db()
        assert (survey.score, survey.comment) == (4, "Quick and friendly, thanks")
        assert csat_summary(group_by="agent") == [
            {"agent": agent.pk, "responses": 1, "average": 4.0, "csat_percent": 100.0}
        ]


def test_csat_outside_the_window_is_an_approved_template(
    tenant_a: TenantSetup, graph_api: FakeGraphApi, django_capture_on_commit_callbacks: Capture
) -> None:
    with tenant_context(tenant_a.organization):
        conversation = _conversation(tenant_a, window_open=False)
        with django_capture_on_commit_callbacks(execute=True):
            conversation_resolve(conversation=conversation, by=None)
        survey = CsatSurvey.objects.get(conversation=conversation)
        assert survey.channel == "template"
        assert survey.message is not None and survey.message.outbox is not None
        outbox_deliver(outbox_id=survey.message.outbox.pk)
        body = graph_api.sent_messages()[-1].body
        assert body["type"] == "template" and body["template"]["name"] == "csat_request"
        payloads = [c["parameters"][0]["payload"] for c in body["template"]["components"] if c["type"] == "button"]
        assert payloads == [f"csat:{survey.pk}:{n}" for n in (5, 4, 3, 2, 1)]


def _rating_template(tenant: TenantSetup, *, category: str, status: str) -> None:
    """The number's copy of the rating template (`CSAT_TEMPLATE_NAME`), as a fetch stores it."""
    MessageTemplate.objects.create(
        account=tenant.whatsapp,
        name="csat_request",
        language="en",
        category=category,
        status=status,
        body_text="How did we do?",
        synced_at=timezone.now(),
    )


def test_csat_is_not_asked_with_a_template_whatsapp_paused(
    tenant_a: TenantSetup, django_capture_on_commit_callbacks: Capture
) -> None:
    with tenant_context(tenant_a.organization):
        _rating_template(tenant_a, category="UTILITY", status="PAUSED")
        outside = _conversation(tenant_a, window_open=False, language="en")
        with django_capture_on_commit_callbacks(execute=True):
            conversation_resolve(conversation=outside, by=None)
        assert not CsatSurvey.objects.filter(conversation=outside).exists()
        assert not OutboxMessage.objects.filter(to_wa_id=outside.contact.wa_id).exists()
        # Inside the window the question needs no template: still asked.
        inside = _conversation(tenant_a, window_open=True, language="en")
        with django_capture_on_commit_callbacks(execute=True):
            conversation_resolve(conversation=inside, by=None)
        assert CsatSurvey.objects.get(conversation=inside).channel == "interactive"


def test_csat_never_goes_as_a_marketing_template_to_a_customer_who_opted_out(
    tenant_a: TenantSetup, django_capture_on_commit_callbacks: Capture
) -> None:
    """Meta may file the rating template under MARKETING: then a customer who sent STOP is not asked."""
    with tenant_context(tenant_a.organization):
        _rating_template(tenant_a, category="MARKETING", status="APPROVED")
        opted_out = _conversation(tenant_a, window_open=False, language="en")
        contact_consent_set(contact=opted_out.contact, action="opt_out", source="keyword", evidence="STOP")
        with django_capture_on_commit_callbacks(execute=True):
            conversation_resolve(conversation=opted_out, by=None)
        assert not CsatSurvey.objects.filter(conversation=opted_out).exists()
        assert not OutboxMessage.objects.filter(to_wa_id=opted_out.contact.wa_id).exists()

        # Inside the window the question is a service reply (an interactive list): still asked.
        inside = _conversation(tenant_a, window_open=True, language="en")
        contact_consent_set(contact=inside.contact, action="opt_out", source="keyword", evidence="STOP")
        with django_capture_on_commit_callbacks(execute=True):
            conversation_resolve(conversation=inside, by=None)
        assert CsatSurvey.objects.get(conversation=inside).channel == "interactive"

        # A customer who did not opt out still gets the template.
        subscribed = _conversation(tenant_a, window_open=False, language="en")
        with django_capture_on_commit_callbacks(execute=True):
            conversation_resolve(conversation=subscribed, by=None)
        assert CsatSurvey.objects.get(conversation=subscribed).channel == "template"


# --- API ----------------------------------------------------------------------------------


def _client(tenant: TenantSetup, user: User) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient(HTTP_HOST=tenant.domain)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def test_api_creates_lists_by_risk_updates_and_keeps_tenants_apart(
    tenant_a: TenantSetup, tenant_b: TenantSetup
) -> None:
    with tenant_context(tenant_a.organization):
        manager = _user(SUPPORT_MANAGER)
        conversation = _conversation(tenant_a)
        client = _client(tenant_a, manager)
        created = client.post(
            "/api/v1/tickets/",
            {
                "title": "Card charged twice",
                "priority": "urgent",
                "conversations": [conversation.pk],
                "tags": ["Billing"],
            },
            format="json",
        )
        assert created.status_code == 201, created.json()
        ticket_id = created.json()["id"]
        assert created.json()["conversations"] == [conversation.pk] and created.json()["tags"] == ["billing"]
        ticket_create(title="Low one", by=None, priority="low")

        def count() -> int:
            with CaptureQueriesContext(connection) as queries:
                assert client.get("/api/v1/tickets/").status_code == 200
            return len(queries)

        few = count()
        for _ in range(3):
            ticket_create(title="More", by=None, conversations=[_conversation(tenant_a)])
        assert count() == few  # constant in the number of tickets
        listing = client.get("/api/v1/tickets/")
        scores = [row["risk_score"] for row in listing.json()["results"]]
        assert scores == sorted(scores, reverse=True)

        patched = client.patch(f"/api/v1/tickets/{ticket_id}/", {"status": "on_hold"}, format="json")
        assert patched.status_code == 200 and patched.json()["sla_paused_at"] is not None
        refused = client.patch(f"/api/v1/tickets/{ticket_id}/", {"status": "new"}, format="json")
        assert refused.status_code == 409 and refused.json()["code"] == "ticket_transition_invalid"
        detail = client.get(f"/api/v1/tickets/{ticket_id}/").json()
        assert [event["kind"] for event in detail["history"]] == ["created", "changed"]

        from_conversation = client.post(
            "/api/v1/tickets/from-conversation/", {"conversation": conversation.pk}, format="json"
        )
        assert from_conversation.status_code == 201 and from_conversation.json()["id"] == ticket_id

    with tenant_context(tenant_b.organization):
        other = _client(tenant_b, _user(SUPPORT_MANAGER))
        assert other.get(f"/api/v1/tickets/{ticket_id}/").status_code == 404
        assert all(row["id"] != ticket_id for row in other.get("/api/v1/tickets/").json()["results"])


def test_agents_see_their_tickets_and_their_queue_only(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        agent, colleague = _user(AGENT), _user(AGENT)
        mine = ticket_create(title="Mine", by=None, assignee=agent)
        theirs = ticket_create(title="Theirs", by=None, assignee=colleague)
        ids = {row["id"] for row in _client(tenant_a, agent).get("/api/v1/tickets/").json()["results"]}
        assert mine.pk in ids and theirs.pk not in ids
        assert _client(tenant_a, agent).get("/api/v1/tickets/csat/").status_code == 403


# --- hooks from conversations -------------------------------------------------------------


def test_agent_replies_stop_the_response_clocks_and_customer_messages_start_the_next(
    tenant_a: TenantSetup, graph_api: FakeGraphApi, django_capture_on_commit_callbacks: Capture
) -> None:
    from apps.conversations.services import conversation_reply

    with tenant_context(tenant_a.organization):
        _policy("medium")
        agent = _user(AGENT)
        conversation = _conversation(tenant_a)
        ticket = ticket_create(title="Where is my order", by=None, conversations=[conversation])
        with django_capture_on_commit_callbacks(execute=True):
            conversation_reply(conversation=conversation, agent=agent, text="Let me check.", translate=False)
        ticket.refresh_from_db()
        assert ticket.first_responded_at is not None and ticket.first_response_due_at is None
        assert ticket.status == "open" and ticket.next_response_due_at is None

        message_analysed_received(_inbound(conversation, "Thanks, and the invoice?"))
        ticket.refresh_from_db()
        assert ticket.next_response_started_at is not None
        assert ticket.next_response_due_at is not None
        assert ticket.next_response_due_at - ticket.next_response_started_at == timedelta(minutes=30)


def test_a_failing_hook_never_undoes_the_conversation_change(
    tenant_a: TenantSetup, django_capture_on_commit_callbacks: Capture
) -> None:
    from apps.conversations import hooks
    from apps.core.tenancy import current_schema

    seen: list[str] = []

    def broken(conversation: Conversation, reason: str) -> None:
        raise RuntimeError("boom")

    def recorder(conversation: Conversation, reason: str) -> None:
        seen.append(f"{current_schema()}:{reason}")

    hooks.on_handoff.extend([broken, recorder])
    try:
        with tenant_context(tenant_a.organization):
            AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
            conversation = _conversation(tenant_a)
            with django_capture_on_commit_callbacks(execute=True):
                conversation_handoff(conversation=conversation, reason="help")
            conversation.refresh_from_db()
            assert conversation.status == "waiting"
            assert seen == [f"{tenant_a.schema}:help"]  # the next handler still ran, in the tenant
            assert Ticket.objects.filter(conversations=conversation).exists()
    finally:
        hooks.on_handoff.remove(broken)
        hooks.on_handoff.remove(recorder)


def test_the_admin_lists_tickets_with_filters(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        ticket_create(title="Admin sees me", by=None, priority="high")
    client = tenant_a.client()
    login = client.post("/admin/login/", {"username": tenant_a.admin_email, "password": tenant_a.password})
    assert login.status_code == 302
    page = client.get("/admin/tickets/ticket/?priority__exact=high")
    assert page.status_code == 200 and b"Admin sees me" in page.content
    for path in ["slapolicy", "businesscalendar", "escalationrule", "slaevent", "csatsurvey", "escalationrulefiring"]:
        assert client.get(f"/admin/tickets/{path}/").status_code == 200, path
    assert client.get("/admin/tickets/ticket/add/").status_code == 200
    added = client.post(
        "/admin/tickets/ticket/add/",
        {
            "title": "Made in the admin",
            "description": "",
            "status": "new",
            "priority": "urgent",
            "tags": "vip,Billing",
            "conversations": "",
            "events-TOTAL_FORMS": "0",
            "events-INITIAL_FORMS": "0",
        },
    )
    assert added.status_code == 302, added.content[:2000]
    with tenant_context(tenant_a.organization):
        ticket = Ticket.objects.get(title="Made in the admin")
        assert ticket.priority == "urgent" and ticket.tags == ["billing", "vip"]
        created = ticket.events.get()
        assert created.kind == "created" and created.actor is not None


def test_rules_run_after_the_real_message_analysis(
    tenant_a: TenantSetup, django_capture_on_commit_callbacks: Capture
) -> None:
    from apps.conversations.analysis import message_analyse

    with tenant_context(tenant_a.organization):
        EscalationRule.objects.all().delete()
        rule = EscalationRule.objects.create(
            name="legal", position=1, trigger="keyword", pattern="lawyer, court", action="tag", tag="legal"
        )
        conversation = _conversation(tenant_a)
        message = _inbound(conversation, "I will take you to court over this order")
        with django_capture_on_commit_callbacks(execute=True):
            assert message_analyse(message_id=message.pk) is not None
        assert EscalationRuleFiring.objects.filter(rule=rule, message=message).exists()
        conversation.refresh_from_db()
        assert "legal" in conversation.tags
