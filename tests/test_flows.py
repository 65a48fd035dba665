"""Flows end to end on the real database: webhook payload → analysis → flow → replies."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from datetime import time as datetime_time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.contacts.models import Contact, ServiceWindow
from apps.conversations.analysis import message_analyse
from apps.conversations.models import Conversation, Message
from apps.conversations.services import inbound_message_record
from apps.conversations.tasks import message_automation_task
from apps.core.tenancy import tenant_context
from apps.flows import graph as g
from apps.flows.models import Flow, FlowRun, FlowRunStep
from apps.flows.selectors import flow_runs_resume_due
from apps.flows.services import (
    flow_activate,
    flow_publish,
    flow_run_resume,
    flow_runs_end_on_handoff,
    flow_runs_resume_due_sweep,
)
from apps.flows.tests.fakes import graph_of, node
from apps.tickets.models import BusinessCalendar, BusinessHoursPeriod
from apps.whatsapp.models import MessageTemplate, OutboxMessage
from apps.whatsapp.payloads import parse_message
from tests.conftest import PASSWORD, TenantSetup

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)
MENU = [{"id": "track", "title": "Track an order"}, {"id": "agent", "title": "Something else"}]


def _says(tenant: TenantSetup, wa_id: str, text: str = "", *, reply_id: str = "", run: bool = True) -> Message:
    body: dict[str, Any] = {"from": wa_id, "id": f"wamid.FLOW{next(_numbers)}", "timestamp": str(int(time.time()))}
    if reply_id:
        body |= {
            "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": reply_id, "title": text}},
        }
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


def _flow(name: str, data: dict[str, Any], *, priority: int = 0) -> Flow:
    flow = Flow.objects.create(name=name, draft=data, priority=priority)
    flow_publish(flow=flow, by=None)
    return flow_activate(flow=flow, active=True)


def _menu_flow() -> Flow:
    return _flow(
        "Menu",
        graph_of(
            node("hi", "send_message", {"default": "menu"}, text="Welcome {{last_message}}"),
            node(
                "menu",
                "quick_replies",
                {"track": "ask", "agent": "people", "invalid": "people"},
                text="How can we help?",
                options=MENU,
                variable="topic",
            ),
            node("ask", "send_message", text="Send your order number ({{topic}})"),
            node("people", "human_handoff", text="Connecting you", reason="asked for a person"),
            trigger={"kind": "keyword", "keywords": ["menu"]},
        ),
    )


def test_publish_freezes_versions_and_refuses_invalid_drafts(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        flow = _menu_flow()
        assert flow.trigger == {"kind": "keyword", "keywords": ["menu"]}
        flow.draft = graph_of(node("x", "send_message", text="v2"))
        flow.save()
        assert flow_publish(flow=flow, by=None).number == 2
        assert [v.number for v in flow.versions.all()] == [2, 1]
        flow.draft = graph_of(node("x", "send_message", text="y" * 5000))
        flow.save()
        with pytest.raises(g.FlowGraphInvalid, match="Node x"):
            flow_publish(flow=flow, by=None)
        assert flow.versions.count() == 2


def test_a_keyword_starts_the_flow_and_a_button_continues_it(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _menu_flow()
        wa_id = "254711000001"
        first = _says(tenant_a, wa_id, "menu")
        assert _bot(wa_id) == ["Welcome menu", "How can we help?"]  # the knowledge reply stayed silent
        run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
        assert (run.status, run.current_node, run.last_message_id) == ("waiting", "menu", first.pk)
        # The task is retried after a crash: nothing is sent twice.
        assert message_automation_task.run(first.pk) == "done"
        assert len(_bot(wa_id)) == 2
        _says(tenant_a, wa_id, "Track an order", reply_id="track")
        assert _bot(wa_id)[-1] == "Send your order number (track)"
        run.refresh_from_db()
        assert run.status == "finished" and run.variables["topic"] == "track"
        steps = list(FlowRunStep.objects.filter(run=run).values_list("node_id", "branch"))
        assert steps == [
            ("start", "default"),
            ("hi", "default"),
            ("menu", "wait"),
            ("menu", "track"),
            ("ask", "default"),
        ]


def test_the_handoff_node_hands_off_to_people(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _menu_flow()
        wa_id = "254711000002"
        _says(tenant_a, wa_id, "menu")
        _says(tenant_a, wa_id, "Something else", reply_id="agent")
        conversation = Conversation.objects.get(contact__wa_id=wa_id)
        assert conversation.status == "waiting" and conversation.handoff_reason == "asked for a person"
        assert _bot(wa_id)[-1] == "Connecting you"


def test_without_a_matching_flow_the_default_flow_answers(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _menu_flow()
        wa_id = "254711000003"
        _says(tenant_a, wa_id, "Hello")
        assert _bot(wa_id) == ["Hello Wanjiru! How can we help you today?"]
        run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
        assert (run.version.flow.key, run.status) == ("default", "finished")


def test_keywords_beat_a_catch_all_with_a_higher_priority(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _flow("Everything", graph_of(node("a", "send_message", text="catch-all")), priority=10)
        _menu_flow()
        wa_id = "254711000004"
        _says(tenant_a, wa_id, "menu please")
        assert _bot(wa_id)[0] == "Welcome menu please"
        _says(tenant_a, wa_id, "Something else", reply_id="agent")
        other = "254711000005"
        _says(tenant_a, other, "anything")
        assert _bot(other) == ["catch-all"]


def test_one_active_run_per_conversation(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _menu_flow()
        wa_id = "254711000006"
        _says(tenant_a, wa_id, "menu")
        run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
        with pytest.raises(IntegrityError), transaction.atomic():
            FlowRun.objects.create(version=run.version, contact=run.contact, conversation=run.conversation)


def test_a_delay_resumes_by_its_task_or_the_sweep(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _flow(
            "Follow-up",
            graph_of(
                node("ok", "send_message", {"default": "wait"}, text="We'll check back"),
                node("wait", "delay", {"default": "again"}, seconds=3600),
                node("again", "send_message", text="Still need help?"),
                trigger={"kind": "keyword", "keywords": ["later"]},
            ),
        )
        wa_id = "254711000007"
        _says(tenant_a, wa_id, "later")
        run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
        assert run.status == "waiting" and run.wait_until is not None and run.resume_token == 1
        _says(tenant_a, wa_id, "hello?")  # the flow owns the conversation while it waits
        assert _bot(wa_id) == ["We'll check back"]
        assert not flow_run_resume(run_id=run.pk, token=1)  # too early
        later = timezone.now() + timedelta(hours=1, minutes=1)
        assert not flow_run_resume(run_id=run.pk, token=0, now=later)  # a stale task
        assert flow_runs_resume_due_sweep(now=later) == 1
        assert _bot(wa_id) == ["We'll check back", "Still need help?"]
        run.refresh_from_db()
        assert run.status == "finished" and run.wait_until is None
        assert flow_runs_resume_due_sweep(now=later) == 0


def test_a_handoff_ends_the_run_and_a_delay_never_speaks_over_an_agent(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _menu_flow()
        wa_id = "254711000008"
        _says(tenant_a, wa_id, "menu")
        conversation = Conversation.objects.get(contact__wa_id=wa_id)
        flow_runs_end_on_handoff(conversation, "customer asked for a person")
        run = FlowRun.objects.get(conversation=conversation)
        assert run.status == "finished" and run.error.startswith("handed off")

        _flow(
            "Later",
            graph_of(
                node("wait", "delay", {"default": "again"}, seconds=60),
                node("again", "send_message", text="Still need help?"),
                trigger={"kind": "keyword", "keywords": ["later"]},
            ),
        )
        other = "254711000009"
        _says(tenant_a, other, "later")
        run = FlowRun.objects.get(conversation__contact__wa_id=other)
        Conversation.objects.filter(pk=run.conversation_id).update(
            status=Conversation.Status.WAITING, waiting_since=timezone.now()
        )
        assert not flow_run_resume(run_id=run.pk, token=run.resume_token, now=timezone.now() + timedelta(minutes=2))
        run.refresh_from_db()
        assert run.status == "finished" and _bot(other) == []


def test_a_retried_task_after_the_run_ended_stays_with_the_flow(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _menu_flow()
        wa_id = "254711000010"
        _says(tenant_a, wa_id, "menu")
        last = _says(tenant_a, wa_id, "Track an order", reply_id="track")
        replies = _bot(wa_id)
        assert message_automation_task.run(last.pk) == "done"
        assert _bot(wa_id) == replies  # neither the flow nor the knowledge reply answers again


def test_business_hours_trigger_uses_the_business_calendar(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        BusinessCalendar.objects.create(name=f"Closed {next(_numbers)}")  # no periods: always closed
        _flow(
            "After hours",
            graph_of(node("a", "send_message", text="We are closed"), trigger={"kind": "business_hours"}),
        )
        wa_id = "254711000011"
        _says(tenant_a, wa_id, "is anyone there")
        assert _bot(wa_id) == ["We are closed"]


def test_a_calendar_with_an_unknown_time_zone_never_silences_the_bot(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        # Saved before the admin checked the name: "Nairobi" is not a zone ZoneInfo can read.
        calendar = BusinessCalendar.objects.create(name=f"Typed {next(_numbers)}", time_zone="Nairobi")
        for day in range(7):
            BusinessHoursPeriod.objects.create(
                calendar=calendar, weekday=day, start=datetime_time(0), end=datetime_time(0)
            )
        _flow(
            "Open",
            graph_of(
                node("a", "send_message", text="We are open"), trigger={"kind": "business_hours", "when": "inside"}
            ),
        )
        wa_id = "254711000041"
        _says(tenant_a, wa_id, "is anyone there")
        assert _bot(wa_id) == ["We are open"]


def test_a_run_waiting_on_quick_replies_after_a_delay_is_not_resumed_again(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _flow(
            "Check back",
            graph_of(
                node("wait", "delay", {"default": "menu"}, seconds=60),
                node("menu", "quick_replies", {"default": "done"}, text="Still need help?", options=MENU),
                node("done", "send_message", text="Thanks"),
                trigger={"kind": "keyword", "keywords": ["checkback"]},
            ),
        )
        wa_id = "254711000042"
        _says(tenant_a, wa_id, "checkback")
        run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
        later = timezone.now() + timedelta(minutes=2)
        assert flow_run_resume(run_id=run.pk, token=run.resume_token, now=later)
        run.refresh_from_db()
        assert run.status == "waiting" and run.current_node == "menu"
        assert run.wait_until is None  # it waits on the customer now, not on the clock
        assert run.pk not in flow_runs_resume_due(now=later + timedelta(hours=1))
        assert _bot(wa_id) == ["Still need help?"]

        # A run left with a stale deadline (before this fix) is resumed once, harmlessly, and let go.
        FlowRun.objects.filter(pk=run.pk).update(wait_until=later)
        assert flow_runs_resume_due_sweep(now=later + timedelta(minutes=5)) == 1
        run.refresh_from_db()
        assert run.status == "waiting" and run.current_node == "menu" and run.wait_until is None
        assert flow_runs_resume_due_sweep(now=later + timedelta(minutes=10)) == 0
        assert _bot(wa_id) == ["Still need help?"]
        _says(tenant_a, wa_id, "Track an order", reply_id="track")
        assert _bot(wa_id) == ["Still need help?", "Thanks"]


def _catalogue(tenant: TenantSetup) -> None:
    """A marketing and a utility template in the number's catalogue, as a sync stores them."""
    for name, category, body in (
        ("weekly_offer", "MARKETING", "10% off everything this week!"),
        ("order_ready", "UTILITY", "Hello {{1}}, your order {{2}} is ready."),
    ):
        MessageTemplate.objects.create(
            account=tenant.whatsapp,
            name=name,
            language="en",
            category=category,
            status="APPROVED",
            body_text=body,
            variable_count=body.count("{{"),
            synced_at=timezone.now(),
        )


OFFER = node("offer", "send_message", {"default": "update"}, template={"name": "weekly_offer", "language": "en"})
UPDATE = node(
    "update",
    "send_message",
    {"default": "bye"},
    template={"name": "order_ready", "language": "en", "params": ["{{contact.first_name}}", "A-42"]},
)


def _templates_sent(wa_id: str) -> list[str]:
    rows = OutboxMessage.objects.filter(to_wa_id=wa_id, kind="template").order_by("pk")
    return [row.payload["template"]["name"] for row in rows]


def _deals_flow() -> None:
    """On "deals": the marketing offer, the utility update, then a text."""
    _flow(
        "Deals",
        graph_of(
            OFFER, UPDATE, node("bye", "send_message", text="Anything else?"),
            trigger={"kind": "keyword", "keywords": ["deals"]},
        ),
    )  # fmt: skip


def test_a_flow_sends_no_marketing_template_to_a_customer_who_opted_out(
    tenant_a: TenantSetup, caplog: pytest.LogCaptureFixture
) -> None:
    with tenant_context(tenant_a.organization):
        _catalogue(tenant_a)
        _deals_flow()
        subscribed = "254711000050"
        _says(tenant_a, subscribed, "deals")
        assert _templates_sent(subscribed) == ["weekly_offer", "order_ready"]

        wa_id = "254711000051"
        _says(tenant_a, wa_id, "STOP")
        assert Contact.objects.get(wa_id=wa_id).consent == Contact.Consent.OPTED_OUT
        with caplog.at_level(logging.WARNING, logger="apps.flows"):
            _says(tenant_a, wa_id, "deals")
        # The marketing template is not sent; the utility one and the rest of the flow are.
        assert _templates_sent(wa_id) == ["order_ready"]
        assert _bot(wa_id) == ["[template order_ready] Wanjiru | A-42", "Anything else?"]
        run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
        assert (run.status, run.error) == ("finished", "")
        steps = {step.node_id: step for step in FlowRunStep.objects.filter(run=run)}
        assert steps["offer"].branch == "default" and "opted out" in steps["offer"].error
        assert "weekly_offer" in steps["offer"].error
        assert steps["update"].error == "" and steps["bye"].error == ""
        assert "weekly_offer" in caplog.text and "opted out" in caplog.text


def test_a_flow_notes_a_template_whatsapp_paused_and_goes_on(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _catalogue(tenant_a)
        MessageTemplate.objects.filter(name="order_ready").update(status="PAUSED")
        _deals_flow()
        wa_id = "254711000053"
        _says(tenant_a, wa_id, "deals")
        assert _templates_sent(wa_id) == ["weekly_offer"]
        run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
        assert (run.status, run.error) == ("finished", "")
        steps = {step.node_id: step for step in FlowRunStep.objects.filter(run=run)}
        assert "order_ready" in steps["update"].error and "PAUSED" in steps["update"].error
        assert steps["offer"].error == "" and steps["bye"].error == ""


def test_a_marketing_template_after_a_delay_skips_a_customer_who_opted_out_meanwhile(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _catalogue(tenant_a)
        _flow(
            "Win back",
            graph_of(
                node("ok", "send_message", {"default": "wait"}, text="We will let you know"),
                node("wait", "delay", {"default": "offer"}, seconds=25 * 3600),
                OFFER, UPDATE, node("bye", "send_message", text="Anything else?"),
                trigger={"kind": "keyword", "keywords": ["notify"]},
            ),
        )  # fmt: skip
        wa_id = "254711000052"
        _says(tenant_a, wa_id, "notify")
        _says(tenant_a, wa_id, "STOP")  # during the Delay
        run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
        assert run.status == "waiting"
        # 26 hours later: the customer's window has closed meanwhile.
        ServiceWindow.objects.filter(contact__wa_id=wa_id).update(expires_at=timezone.now() - timedelta(hours=2))
        assert flow_run_resume(run_id=run.pk, token=run.resume_token, now=timezone.now() + timedelta(hours=26))
        assert _templates_sent(wa_id) == ["order_ready"]
        run.refresh_from_db()
        assert run.status == "finished"
        offer = FlowRunStep.objects.get(run=run, node_id="offer")
        assert "opted out" in offer.error
        # The window closed during the Delay: the text after the templates is not sent, and says so.
        assert "window" in FlowRunStep.objects.get(run=run, node_id="bye").error


def test_runs_and_their_steps_are_visible_in_the_admin(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _menu_flow()
        _says(tenant_a, "254711000012", "menu")
        run = FlowRun.objects.get(conversation__contact__wa_id="254711000012")
    client = tenant_a.client()
    assert client.post("/admin/login/", {"username": tenant_a.admin_email, "password": PASSWORD}).status_code == 302
    assert client.get("/admin/flows/flowrun/").status_code == 200
    page = client.get(f"/admin/flows/flowrun/{run.pk}/change/")
    assert page.status_code == 200 and b"quick_replies" in page.content
    assert client.get("/admin/flows/flowrunstep/").status_code == 200
    assert client.get("/admin/flows/flow/").status_code == 200


def test_an_api_call_node_reaches_an_outside_service(tenant_a: TenantSetup, settings: Any) -> None:
    keys: list[str] = []

    class Orders(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            keys.append(self.headers.get("Idempotency-Key", ""))
            body = json.dumps({"order": self.path.rsplit("/", 1)[-1], "status": "shipped"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Orders)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.FLOWS_EGRESS_ALLOW_LOOPBACK = True  # the one positive case; refusals: apps/flows/tests/test_egress.py
    try:
        with tenant_context(tenant_a.organization):
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
            wa_id = "254711000013"
            message = _says(tenant_a, wa_id, "4711")
            assert _bot(wa_id) == ["Order 4711 is shipped"]
            # The call carries a key of this event: the same walk again (a lost race, a retried
            # task) sends the same key, another event another one.
            from apps.flows.live_ports import LivePorts

            assert len(keys) == 1 and len(keys[0]) == 40
            ports = LivePorts(conversation=message.conversation, key=f"bot:{message.pk}")
            orders = f"http://127.0.0.1:{server.server_address[1]}/orders"
            assert ports.http_call("GET", f"{orders}/1", {}, None).status == 200
            assert keys[1] == keys[0]
            _says(tenant_a, wa_id, "4712")
            assert len(keys) == 3 and keys[2] != keys[0]
            own = {"idempotency-key": "mine"}
            assert ports.http_call("GET", f"{orders}/2", own, None).status == 200
            assert keys[3] == "mine"
    finally:
        server.shutdown()
        server.server_close()


def test_ended_runs_are_pruned_after_the_retention_with_their_steps_per_tenant(
    tenant_a: TenantSetup, tenant_b: TenantSetup, settings: Any
) -> None:
    """The daily sweep (run per tenant by the fan-out) deletes old ended runs of its tenant only."""
    from apps.flows.tasks import flow_runs_prune_task

    settings.FLOW_RUN_RETENTION_DAYS = 90
    long_ago = timezone.now() - timedelta(days=91)

    def runs(tenant: TenantSetup, prefix: str) -> dict[str, int]:
        _menu_flow()
        made = {}
        for name in ("finished", "failed", "waiting", "recent"):
            wa_id = f"{prefix}{next(_numbers):04d}"
            _says(tenant, wa_id, "menu")  # a run, waiting at the menu, with its steps
            run = FlowRun.objects.get(conversation__contact__wa_id=wa_id)
            status = {"finished": "finished", "failed": "failed", "recent": "finished"}.get(name, "waiting")
            updated = timezone.now() if name == "recent" else long_ago
            FlowRun.objects.filter(pk=run.pk).update(status=status, updated=updated)
            made[name] = run.pk
        return made

    with tenant_context(tenant_b.organization):
        in_b = runs(tenant_b, "25471300")
    with tenant_context(tenant_a.organization):
        in_a = runs(tenant_a, "25471200")
        assert FlowRunStep.objects.filter(run_id=in_a["finished"]).exists()
        assert flow_runs_prune_task.run() == 2
        left = set(FlowRun.objects.filter(pk__in=in_a.values()).values_list("pk", flat=True))
        assert left == {in_a["waiting"], in_a["recent"]}  # an active run stays whatever its age
        assert not FlowRunStep.objects.filter(run_id__in=[in_a["finished"], in_a["failed"]]).exists()
        assert FlowRunStep.objects.filter(run_id=in_a["recent"]).exists()
    with tenant_context(tenant_b.organization):
        assert set(FlowRun.objects.filter(pk__in=in_b.values()).values_list("pk", flat=True)) == set(in_b.values())
