"""The built-in default flow, the knowledge fallback of a failing flow, run claims and the samples."""

from __future__ import annotations

import importlib
import itertools
import time
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.utils import timezone

from apps.conversations.analysis import message_analyse
from apps.conversations.models import Conversation, Message
from apps.conversations.services import inbound_message_record
from apps.conversations.tasks import message_automation_task
from apps.core.tenancy import schema_context, tenant_context
from apps.flows import graph as g
from apps.flows.builtin import DEFAULT_KEY, DEFAULT_PRIORITY
from apps.flows.models import Flow, FlowRun, FlowVersion
from apps.flows.samples import BOOKING_KEY, ORDER_STATUS_KEY, flow_samples_install
from apps.flows.services import FlowRunBusy, flow_activate, flow_handle_message, flow_publish, flow_run_resume
from apps.flows.tests.fakes import graph_of, node
from apps.knowledge.indexing import article_index
from apps.knowledge.models import Article, KnowledgeGap
from apps.knowledge.services import article_save
from apps.tenants.schemas import TEMPLATE_SCHEMA
from apps.tickets.models import Ticket
from apps.whatsapp.models import OutboxMessage
from apps.whatsapp.payloads import parse_message
from tests.conftest import TenantSetup

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)
DELIVERY = (
    "We deliver anywhere in Nairobi within 24 hours, and to other towns in Kenya within 3 working days. "
    "Delivery is free for orders above 2,000 shillings."
)
QUESTION = "How long does delivery to Nairobi take?"


def _says(
    tenant: TenantSetup, wa_id: str, text: str = "", *, reply_id: str = "", list_reply: bool = False, run: bool = True
) -> Message:
    body: dict[str, Any] = {"from": wa_id, "id": f"wamid.DEF{next(_numbers)}", "timestamp": str(int(time.time()))}
    if reply_id:
        kind = "list_reply" if list_reply else "button_reply"
        body |= {"type": "interactive", "interactive": {"type": kind, kind: {"id": reply_id, "title": text}}}
    else:
        body |= {"type": "text", "text": {"body": text}}
    payload = {"message": body, "contacts": [{"wa_id": wa_id, "profile": {"name": "Wanjiru Kamau"}}]}
    message = inbound_message_record(account=tenant.whatsapp, inbound=parse_message(payload))
    assert message is not None
    assert message_analyse(message_id=message.pk) is not None
    if run:
        assert message_automation_task.run(message.pk) == "done"
    return message


def _bot(wa_id: str) -> list[str]:
    return list(
        Message.objects.filter(conversation__contact__wa_id=wa_id, author_kind="bot")
        .order_by("id")
        .values_list("text", flat=True)
    )


def _faq(title: str = "Delivery times", body: str = DELIVERY) -> None:
    article = article_save(title=title, body=body, status=Article.Status.PUBLISHED)
    assert article_index(article_id=article.pk) is not None


def _default() -> Flow:
    return Flow.objects.get(key=DEFAULT_KEY)


def _flow(name: str, data: dict[str, Any], *, priority: int = 0) -> Flow:
    flow = Flow.objects.create(name=name, draft=data, priority=priority)
    flow_publish(flow=flow, by=None)
    return flow_activate(flow=flow, active=True)


# --- the default flow ---------------------------------------------------------------------


def test_every_tenant_and_the_template_have_the_published_default_flow(
    tenant_a: TenantSetup, tenant_b: TenantSetup
) -> None:
    for schema in (TEMPLATE_SCHEMA, tenant_a.schema, tenant_b.schema):
        with schema_context(schema):
            flow = _default()
            assert flow.is_active and flow.priority == DEFAULT_PRIORITY
            assert flow.trigger == {"kind": "catch_all"}
            version = flow.versions.get()
            assert version.number == 1 and version.graph == flow.draft
            graph = g.graph_validate(version.graph)
            assert {n.type for n in graph.nodes.values()} >= {"knowledge_base", "human_handoff"}
            # The bot's words carry the catalogue's translations.
            handoff = graph.node("handoff").config
            assert handoff["translations"]["sw"]["text"].startswith("Bado sina jibu")


def test_the_data_migration_installs_the_default_flow_once(tenant_a: TenantSetup) -> None:
    migration = importlib.import_module("apps.flows.migrations.0003_default_flow_install")
    with tenant_context(tenant_a.organization):
        FlowRun.objects.filter(version__flow__key=DEFAULT_KEY).delete()
        _default().delete()  # a tenant that predates the default flow
        migration.install(django_apps, None)
        migration.install(django_apps, None)
        assert Flow.objects.filter(key=DEFAULT_KEY).count() == 1
        assert _default().is_active and FlowVersion.objects.filter(flow__key=DEFAULT_KEY).count() == 1


def test_the_default_flow_answers_with_its_source_and_logs_the_run(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _faq()
        wa_id = "254722000001"
        _says(tenant_a, wa_id, QUESTION)
        replies = _bot(wa_id)
        assert len(replies) == 1
        assert "within 24 hours" in replies[0] and replies[0].endswith("Source: Delivery times")
        run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
        assert (run.version.flow.key, run.status, run.claim) == (DEFAULT_KEY, "finished", "")
        assert list(run.steps.values_list("node_id", "branch")) == [
            ("start", "default"),
            ("has_text", "true"),
            ("is_greeting", "false"),
            ("answer", "answered"),
        ]
        assert Conversation.objects.get(contact__wa_id=wa_id).status == "bot"


def test_each_tenants_default_flow_answers_only_from_its_own_knowledge(
    tenant_a: TenantSetup, tenant_b: TenantSetup
) -> None:
    with tenant_context(tenant_a.organization):
        _faq()
    with tenant_context(tenant_b.organization):
        _faq("Opening hours", "Our shop in Kampala is open from 9 am to 6 pm, Monday to Saturday.")
        wa_id = "254722000002"
        message = _says(tenant_b, wa_id, QUESTION)
        replies = _bot(wa_id)
        assert len(replies) == 1 and "24 hours" not in replies[0]
        assert "connect you with a member of our team" in replies[0]
        conversation = Conversation.objects.get(pk=message.conversation_id)
        assert conversation.status in ("waiting", "assigned")
        assert KnowledgeGap.objects.filter(last_conversation=conversation).exists()
        assert FlowRun.objects.get(conversation=conversation).version.flow.key == DEFAULT_KEY
    with tenant_context(tenant_a.organization):
        wa_id = "254722000003"
        _says(tenant_a, wa_id, QUESTION)
        assert "Source: Delivery times" in _bot(wa_id)[0]
        assert not KnowledgeGap.objects.filter(last_conversation__contact__wa_id=wa_id).exists()


def test_the_default_flow_speaks_the_conversations_language(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        wa_id = "254722000004"
        first = _says(tenant_a, wa_id, "Hello", run=False)
        Conversation.objects.filter(pk=first.conversation_id).update(language="sw")
        assert message_automation_task.run(first.pk) == "done"
        assert _bot(wa_id) == ["Habari Wanjiru! Tunaweza kukusaidia vipi leo?"]


def test_an_admin_edits_the_default_flow_and_the_new_version_answers(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        flow = _default()
        data = flow.draft
        greet = next(n for n in data["nodes"] if n["id"] == "greet")
        greet["config"] = {"text": "Karibu {{contact.first_name}}! Ask us anything about your order."}
        flow.draft = data
        flow.save()
        assert flow_publish(flow=flow, by=None).number == 2
        wa_id = "254722000005"
        _says(tenant_a, wa_id, "Hello")
        assert _bot(wa_id) == ["Karibu Wanjiru! Ask us anything about your order."]


def test_without_an_active_default_flow_the_knowledge_reply_still_answers(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _faq()
        flow_activate(flow=_default(), active=False)
        wa_id = "254722000006"
        _says(tenant_a, wa_id, QUESTION)
        assert "Source: Delivery times" in _bot(wa_id)[0]
        assert not FlowRun.objects.filter(conversation__contact__wa_id=wa_id).exists()
        other = "254722000007"
        _says(tenant_a, other, "Can I pay my electricity bill through you?")
        assert "connect you with a member of our team" in _bot(other)[0]
        assert Conversation.objects.get(contact__wa_id=other).status in ("waiting", "assigned")


def test_an_admins_own_catch_all_beats_the_default_flow(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _flow("Welcome", graph_of(node("hi", "send_message", text="Karibu! Our team replies within the hour.")))
        wa_id = "254722000008"
        _says(tenant_a, wa_id, QUESTION)
        assert _bot(wa_id) == ["Karibu! Our team replies within the hour."]


def test_a_catch_all_answers_the_latest_of_several_messages(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _faq()
        wa_id = "254722000009"
        first = _says(tenant_a, wa_id, "Hi there, quick question", run=False)
        second = _says(tenant_a, wa_id, QUESTION, run=False)
        assert message_automation_task.run(first.pk) == "done"
        assert message_automation_task.run(second.pk) == "done"
        replies = _bot(wa_id)
        assert len(replies) == 1 and "Source: Delivery times" in replies[0]


# --- a failing flow falls back to the knowledge reply --------------------------------------


def test_a_node_that_fails_falls_back_to_the_knowledge_answer(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _faq()
        # A button titled with the customer's words: a long message makes WhatsApp's 20-character
        # limit fail at run time, after publication.
        _flow(
            "Delivery menu",
            graph_of(
                node("hold", "send_message", {"default": "menu"}, text="Let me check that for you."),
                node(
                    "menu",
                    "quick_replies",
                    {"default": "hold"},
                    text="Pick one",
                    options=[{"id": "x", "title": "{{last_message}}"}],
                ),
                trigger={"kind": "keyword", "keywords": ["delivery"]},
            ),
        )
        wa_id = "254722000010"
        message = _says(tenant_a, wa_id, QUESTION)
        replies = _bot(wa_id)
        assert replies[0] == "Let me check that for you."
        assert len(replies) == 2 and "within 24 hours" in replies[1] and "Source: Delivery times" in replies[1]
        run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
        assert run.status == "failed" and "MessageInvalid" in run.error
        assert run.steps.get(node_id="menu").error.startswith("MessageInvalid")
        # A retried task neither walks the flow again nor answers twice.
        assert message_automation_task.run(message.pk) == "done"
        assert len(_bot(wa_id)) == 2
        assert OutboxMessage.objects.filter(to_wa_id=wa_id).count() == 2


def test_a_flow_over_its_budget_falls_back_to_hand_off_when_nothing_is_known(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        chain = [node(f"c{i}", "connector", {"default": f"c{i + 1}"}) for i in range(25)]
        chain.append(node("c25", "send_message", text="never reached"))
        data = graph_of(*chain, trigger={"kind": "keyword", "keywords": ["loop"]})
        with pytest.raises(g.FlowGraphInvalid, match="more than 20 steps"):
            g.graph_validate(data)  # publishing refuses it now; a version published before that still runs
        flow = Flow.objects.create(name="Endless", draft=data, trigger=data["nodes"][0]["config"], is_active=True)
        FlowVersion.objects.create(flow=flow, number=1, graph=data)
        wa_id = "254722000011"
        message = _says(tenant_a, wa_id, "loop: can I pay my electricity bill here?")
        run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
        assert run.status == "failed" and "limit reached" in run.error
        replies = _bot(wa_id)
        assert len(replies) == 1 and "connect you with a member of our team" in replies[0]
        assert Conversation.objects.get(pk=message.conversation_id).status in ("waiting", "assigned")


def test_a_delay_whose_next_node_fails_hands_the_conversation_to_people(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _flow(
            "Check back",
            graph_of(
                node("wait", "delay", {"default": "menu"}, seconds=60),
                node(
                    "menu",
                    "quick_replies",
                    {"default": "wait"},
                    text="Still there?",
                    options=[{"id": "x", "title": "{{last_message}}"}],
                ),
                trigger={"kind": "keyword", "keywords": ["later"]},
            ),
        )
        wa_id = "254722000016"
        _says(tenant_a, wa_id, "later, I am busy with a customer right now")
        run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
        assert run.status == "waiting"
        assert flow_run_resume(run_id=run.pk, token=run.resume_token, now=timezone.now() + timedelta(minutes=2))
        run.refresh_from_db()
        assert run.status == "failed" and "MessageInvalid" in run.error
        conversation = Conversation.objects.get(pk=run.conversation_id)
        assert conversation.status in ("waiting", "assigned") and conversation.handoff_reason.startswith("flow failed")
        assert _bot(wa_id) == []


# --- claims: one event of a conversation at a time ----------------------------------------


def test_a_message_waits_while_another_event_holds_the_run(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        menu = [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}]
        _flow(
            "Survey",
            graph_of(
                node("ask", "quick_replies", {"yes": "thanks", "no": "thanks"}, text="Happy?", options=menu),
                node("thanks", "send_message", text="Thank you ({{mood}})"),
                trigger={"kind": "keyword", "keywords": ["survey"]},
            ),
        )
        wa_id = "254722000012"
        _says(tenant_a, wa_id, "survey")
        run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
        # An earlier message's walk is in flight on another worker (its claim is fresh).
        FlowRun.objects.filter(pk=run.pk).update(claim="m:1", claim_expires=timezone.now() + timedelta(minutes=1))
        answer = _says(tenant_a, wa_id, "Yes", reply_id="yes", run=False)
        with pytest.raises(FlowRunBusy):
            flow_handle_message(answer)
        assert _bot(wa_id) == ["Happy?"]
        # The other worker died: once its lease runs out, this message takes the run.
        FlowRun.objects.filter(pk=run.pk).update(claim_expires=timezone.now() - timedelta(seconds=1))
        assert message_automation_task.run(answer.pk) == "done"
        assert _bot(wa_id) == ["Happy?", "Thank you ()"]
        run.refresh_from_db()
        assert (run.status, run.claim, run.last_message_id) == ("finished", "", answer.pk)


def test_a_hand_off_during_the_walk_drops_the_walks_effects(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _flow(
            "Hi",
            graph_of(
                node("hi", "send_message", text="Hi from the flow"), trigger={"kind": "keyword", "keywords": ["hi"]}
            ),
        )
        wa_id = "254722000013"
        message = _says(tenant_a, wa_id, "hi", run=False)
        # People take the conversation before the flow commits: the flow stays quiet.
        Conversation.objects.filter(pk=message.conversation_id).update(status="waiting", waiting_since=timezone.now())
        flow_handle_message(message)
        assert _bot(wa_id) == []


# --- the demo's sample flows ---------------------------------------------------------------


def test_the_sample_flows_publish_once_and_run(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        assert [f.key for f in flow_samples_install()] == [ORDER_STATUS_KEY, BOOKING_KEY]
        assert flow_samples_install() == []
        for key in (ORDER_STATUS_KEY, BOOKING_KEY):
            flow = Flow.objects.get(key=key)
            assert flow.is_active and flow.versions.count() == 1
            g.graph_validate(flow.draft)

        wa_id = "254722000014"
        _says(tenant_a, wa_id, "book")
        _says(tenant_a, wa_id, "Phone repair", reply_id="repair", list_reply=True)
        _says(tenant_a, wa_id, "Saturday", reply_id="saturday")
        replies = _bot(wa_id)
        assert replies[-1].startswith("Booked: Phone repair, Saturday, at our shop on Moi Avenue")
        conversation = Conversation.objects.select_related("contact").get(contact__wa_id=wa_id)
        assert conversation.contact.custom_fields["appointment"] == "Phone repair, Saturday"
        assert "appointment" in conversation.tags
        assert Ticket.objects.filter(conversations=conversation).exists()

        other = "254722000015"
        _says(tenant_a, other, "oda yangu iko wapi?")
        _says(tenant_a, other, "Track my order", reply_id="track")
        _says(tenant_a, other, "it is db-10234 thanks")
        assert _bot(other)[-1].startswith("Thanks Wanjiru! Our dispatch team is checking order db-10234")
