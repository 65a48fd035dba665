"""Flows end to end: signed webhook → Celery worker → flow → reply at the fake Graph API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connection, transaction

from apps.conversations.models import Conversation, Message
from apps.conversations.services import inbound_message_record
from apps.core.tenancy import tenant_context, use_public_schema
from apps.flows.models import Flow, FlowRun
from apps.flows.samples import flow_samples_install
from apps.flows.services import FlowRunBusy, flow_activate, flow_handle_message, flow_publish
from apps.flows.tests.fakes import graph_of, node
from apps.knowledge.indexing import article_index
from apps.knowledge.models import Article, KnowledgeGap
from apps.knowledge.services import article_save
from apps.tenants.models import WebhookEvent, WhatsAppAccount
from apps.tickets.models import Ticket
from apps.whatsapp.payloads import parse_message
from tests import whatsapp_payloads as wp
from tests.conftest import TenantSetup, tenant_conversations_wipe
from tests.fakes.graph_api import FakeGraphApi

pytestmark = pytest.mark.usefixtures("committed_db")

WA_ID = "254711000001"  # the customer in tests.whatsapp_payloads


@pytest.fixture
def flows_tenant(tenant_a: TenantSetup) -> Iterator[TenantSetup]:
    """tenant_a with committed flows and articles, all removed afterwards."""
    WhatsAppAccount.objects.filter(pk=tenant_a.whatsapp.pk).update(transport=WhatsAppAccount.Transport.CLOUD)
    models: tuple[type[Any], ...] = (Flow, Article, KnowledgeGap, Ticket)
    with tenant_context(tenant_a.organization):
        before = {model: set(model.objects.values_list("pk", flat=True)) for model in models}
    yield tenant_a
    use_public_schema()
    WebhookEvent.objects.filter(tenant=tenant_a.organization).delete()
    tenant_conversations_wipe(tenant_a)  # runs and their steps go with the conversations
    with tenant_context(tenant_a.organization):
        for model in reversed(models):
            model.objects.exclude(pk__in=before[model]).delete()


def _wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _texts(graph_api: FakeGraphApi) -> list[str]:
    return [m.body["text"]["body"] for m in graph_api.sent_messages() if m.body.get("type") == "text"]


def _flow(name: str, data: dict[str, Any]) -> Flow:
    flow = Flow.objects.create(name=name, draft=data)
    flow_publish(flow=flow, by=None)
    return flow_activate(flow=flow, active=True)


def test_a_demo_sample_flow_answers_through_the_worker(
    celery_worker: str, flows_tenant: TenantSetup, graph_api: FakeGraphApi
) -> None:
    with tenant_context(flows_tenant.organization):
        assert len(flow_samples_install()) == 2
    wp.post(wp.text(flows_tenant.whatsapp.phone_number_id, "wamid.SAMPLE1", "track DB-10234 please"))
    _wait_for(lambda: any("checking order DB-10234" in text for text in _texts(graph_api)))
    assert _texts(graph_api) == [
        "Thanks Wanjiru! Our dispatch team is checking order DB-10234 and will reply here within 30 minutes "
        "(Monday to Saturday, 8 am to 8 pm). The rider calls you about 30 minutes before arriving."
    ]
    with tenant_context(flows_tenant.organization):
        conversation = Conversation.objects.get(contact__wa_id=WA_ID)
        assert "order-status" in conversation.tags
        assert Ticket.objects.filter(conversations=conversation, title__contains="DB-10234").exists()


def test_a_failing_flow_falls_back_to_the_knowledge_answer_through_the_worker(
    celery_worker: str, flows_tenant: TenantSetup, graph_api: FakeGraphApi
) -> None:
    with tenant_context(flows_tenant.organization):
        article = article_save(
            title="Delivery times",
            body="We deliver anywhere in Nairobi within 24 hours, and to other towns in Kenya within 3 working days.",
            status=Article.Status.PUBLISHED,
        )
        assert article_index(article_id=article.pk) is not None
        # The button's title is the customer's message: over WhatsApp's 20 characters it fails at run time.
        options = [{"id": "x", "title": "{{last_message}}"}]
        _flow(
            "Delivery menu",
            graph_of(
                node("hold", "send_message", {"default": "menu"}, text="Let me check that for you."),
                node("menu", "quick_replies", {"default": "hold"}, text="Pick one", options=options),
                trigger={"kind": "keyword", "keywords": ["delivery"]},
            ),
        )
    question = "How long does delivery to Nairobi take?"
    wp.post(wp.text(flows_tenant.whatsapp.phone_number_id, "wamid.FAIL1", question))
    _wait_for(lambda: any("Source: Delivery times" in text for text in _texts(graph_api)))
    texts = _texts(graph_api)
    assert texts[0] == "Let me check that for you." and len(texts) == 2
    assert "within 24 hours" in texts[1]
    with tenant_context(flows_tenant.organization):
        run = FlowRun.objects.get(conversation__contact__wa_id=WA_ID)
        assert run.status == "failed" and "MessageInvalid" in run.error
        message = Message.objects.get(wamid="wamid.FAIL1")
        assert run.last_message_id == message.pk  # the message was consumed and answered, not lost


def test_api_calls_run_outside_any_transaction_and_a_concurrent_message_waits_its_turn(
    celery_worker: str, flows_tenant: TenantSetup, graph_api: FakeGraphApi
) -> None:
    tenant = flows_tenant
    probe: dict[str, Any] = {}
    hits: list[str] = []

    def look_while_the_flow_waits() -> None:
        """Runs in the HTTP server's thread, on its own database connection, mid-API Call."""
        with tenant_context(tenant.organization):
            run = FlowRun.objects.get(conversation__contact__wa_id=WA_ID, status="running")
            probe["claim"] = run.claim
            # Neither the run nor the conversation is locked by the worker walking the flow.
            with transaction.atomic():
                FlowRun.objects.select_for_update(nowait=True).get(pk=run.pk)
                Conversation.objects.select_for_update(nowait=True).get(pk=run.conversation_id)
            probe["locked_nowait"] = True
            # ... and no transaction anywhere holds row locks on flow runs.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = 'flows_flowrun' AND l.pid <> pg_backend_pid()",
                    [tenant.schema],
                )
                probe["other_locks"] = cursor.fetchone()[0]
            # The customer writes again meanwhile: that message waits for the walk in flight.
            payload = {
                "message": {"from": WA_ID, "id": "wamid.LOCK2", "timestamp": str(int(time.time())),
                            "type": "text", "text": {"body": "Hello, are you there?"}},
                "contacts": [{"wa_id": WA_ID, "profile": {"name": "Wanjiru"}}],
            }  # fmt: skip
            later = inbound_message_record(account=tenant.whatsapp, inbound=parse_message(payload))
            assert later is not None
            try:
                flow_handle_message(later)
            except FlowRunBusy:
                probe["concurrent"] = "busy"

    class Orders(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            hits.append(self.path)
            try:
                look_while_the_flow_waits()
            except Exception as exc:  # reported through the probe, asserted below
                probe["error"] = repr(exc)
            finally:
                use_public_schema()
                connection.close()
            body = json.dumps({"order": self.path.rsplit("/", 1)[-1], "status": "shipped"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Orders)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tenant_context(tenant.organization):
            url = f"http://127.0.0.1:{server.server_address[1]}/orders/{{{{last_message}}}}"
            _flow(
                "Orders",
                graph_of(
                    node("api", "api_call", {"success": "ok", "error": "bad"}, url=url, variable="result"),
                    node("ok", "send_message", text="Order {{result.order}} is {{result.status}}"),
                    node("bad", "send_message", text="Sorry, try later"),
                    trigger={"kind": "regex", "pattern": r"^\d{3,}$"},
                ),
            )
        wp.post(wp.text(tenant.whatsapp.phone_number_id, "wamid.LOCK1", "4711"))
        _wait_for(lambda: "Order 4711 is shipped" in _texts(graph_api))
        with tenant_context(tenant.organization):
            first = Message.objects.get(wamid="wamid.LOCK1")

            def the_second_is_answered() -> bool:
                second = Message.objects.filter(wamid="wamid.LOCK2").first()
                return (
                    second is not None
                    and Message.objects.filter(
                        author_kind="bot", outbox__idempotency_key__startswith=f"bot:{second.pk}"
                    ).exists()
                )

            _wait_for(the_second_is_answered)
            second = Message.objects.get(wamid="wamid.LOCK2")
            replies = list(
                Message.objects.filter(conversation__contact__wa_id=WA_ID, author_kind="bot")
                .order_by("pk")
                .values_list("outbox__idempotency_key", flat=True)
            )
    finally:
        server.shutdown()
        server.server_close()
    assert probe == {"claim": f"m:{first.pk}", "locked_nowait": True, "other_locks": 0, "concurrent": "busy"}
    assert hits == ["/orders/4711"]  # one walk, one API Call: the message was not processed twice
    # The second message was answered after the first, by the default flow, once.
    assert replies[0] == f"bot:{first.pk}:1" and all(key.startswith(f"bot:{second.pk}") for key in replies[1:])
    assert len(replies) == 2
