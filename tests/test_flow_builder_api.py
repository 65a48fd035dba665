"""The flows API behind the visual builder: drafts, publish, revert, activate, import/export, test runs."""

from __future__ import annotations

import io
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.accounts.models import AgentProfile, User
from apps.accounts.roles import ADMIN, AGENT, SUPPORT_MANAGER
from apps.accounts.services import user_create
from apps.conversations.models import Conversation, Message
from apps.core.tenancy import tenant_context
from apps.flows import graph as g
from apps.flows.drafts import MAX_IMPORT_BYTES, MAX_NODES, flow_export, flow_import
from apps.flows.models import Flow, FlowRun, FlowVersion
from apps.flows.palette import palette
from apps.flows.simulation import SimulatedMessage, flow_test_run
from apps.flows.tests.fakes import graph_of, node
from apps.knowledge.models import KnowledgeGap
from apps.tickets.models import Ticket
from apps.whatsapp.models import MessageTemplate
from tests.conftest import TenantSetup

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)
MENU = [{"id": "track", "title": "Track an order"}, {"id": "agent", "title": "Talk to us"}]
YES_NO = [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}]


def _user(role: str) -> User:
    user = user_create(email=f"builder-{next(_numbers)}@example.test", password=None, role=role)
    AgentProfile.objects.filter(user=user).update(status=AgentProfile.Status.OFFLINE)
    return User.objects.get(pk=user.pk)


def _client(tenant: TenantSetup, user: User) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient(HTTP_HOST=tenant.domain)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _menu_graph() -> dict[str, Any]:
    return graph_of(
        node(
            "menu",
            "quick_replies",
            {"track": "ask", "agent": "people", "invalid": "people"},
            text="How can we help?",
            options=MENU,
            variable="topic",
        ),
        node("ask", "condition", {"true": "thanks", "false": "people"}, rules=[{"field": "tag", "value": "vip"}]),
        node("thanks", "send_message", text="Send your order number ({{topic}})"),
        node("people", "human_handoff", text="Connecting you", reason="asked for a person"),
        trigger={"kind": "keyword", "keywords": ["menu"]},
    )


def test_the_palette_offers_all_13_node_types_with_the_engines_branches() -> None:
    entries = {entry["type"]: entry for entry in palette()}
    assert set(entries) == set(g.NODE_TYPES) and len(entries) == 13
    for node_type, entry in entries.items():
        if entry["outputs"] == "options":
            branches = {key for key, _ in entry["extra_outputs"]}
            assert branches <= g.BRANCHES[node_type]
        else:
            assert {key for key, _ in entry["outputs"]} <= g.BRANCHES[node_type]
            # Every branch the publish check requires has an output dot to draw it from.
            assert g.REQUIRED_BRANCHES.get(node_type, frozenset()) <= {key for key, _ in entry["outputs"]}
        for field in entry["fields"]:
            assert field["kind"] in {
                "text",
                "textarea",
                "number",
                "select",
                "csv",
                "options",
                "rules",
                "replies",
                "headers",
            }
    # A new step's defaults pass its own settings check (only its missing links are left to do).
    for node_type, entry in entries.items():
        if node_type == g.TRIGGER:
            continue
        problems = g.graph_problems(
            {"nodes": [node("start", "trigger", {"default": "x"}), node("x", node_type, **entry["defaults"])]}
        )
        assert all("missing branch" in p.message for p in problems), (node_type, [p.message for p in problems])


def test_graph_problems_lists_every_node_at_fault_and_agrees_with_publish() -> None:
    data = graph_of(
        node("a", "send_message", {"default": "b"}, text=""),
        node("b", "condition", {"true": "c"}, rules=[{"field": "text", "op": "contains", "value": "x"}]),
        node(
            "c",
            "quick_replies",
            {"default": "a"},
            text="Pick",
            options=[{"id": str(i), "title": "t"} for i in range(11)],
        ),
        node("lonely", "connector"),
    )
    problems = {p.extra["node"]: p.message for p in g.graph_problems(data)}
    assert set(problems) == {"a", "b", "c", "lonely"}
    assert "text is required" in problems["a"] and "false" in problems["b"] and "no path" in problems["lonely"]
    with pytest.raises(g.FlowGraphInvalid) as first:
        g.graph_validate(data)
    assert first.value.extra["node"] in problems
    assert g.graph_problems(_menu_graph()) == []
    looping = graph_of(node("a", "connector", {"default": "b"}), node("b", "connector", {"default": "a"}))
    assert [p.extra["node"] for p in g.graph_problems(looping)] == ["a"]


def test_an_admin_builds_publishes_reverts_and_activates_through_the_api(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        manager = _user(SUPPORT_MANAGER)
        client = _client(tenant_a, manager)
        created = client.post("/api/v1/flows/", {"name": "Order help"}, format="json")
        assert created.status_code == 201, created.json()
        flow_id = created.json()["id"]
        assert created.json()["draft"]["nodes"][0]["type"] == "trigger"
        assert [p["node"] for p in created.json()["problems"]] == ["start"]  # the Start step leads nowhere yet

        # An unfinished draft saves; its publish problems come back per node.
        unfinished = graph_of(node("menu", "quick_replies", text="", options=MENU))
        saved = client.patch(f"/api/v1/flows/{flow_id}/", {"draft": unfinished}, format="json")
        assert saved.status_code == 200
        assert [p["node"] for p in saved.json()["problems"]] == ["menu"]
        refused = client.post(f"/api/v1/flows/{flow_id}/publish/")
        assert refused.status_code == 400 and refused.json()["code"] == "flow_graph_invalid"
        assert refused.json()["extra"]["node"] == "menu"

        # A draft that is not even a graph is refused with a clear 400, never stored.
        broken = client.patch(
            f"/api/v1/flows/{flow_id}/", {"draft": {"nodes": [{"id": "x", "type": "nope"}]}}, format="json"
        )
        assert broken.status_code == 400 and "unknown node type" in broken.json()["message"]
        assert Flow.objects.get(pk=flow_id).draft == unfinished

        checked = client.post(f"/api/v1/flows/{flow_id}/check/", {"graph": _menu_graph()}, format="json")
        assert checked.status_code == 200 and checked.json() == []

        detail = client.patch(f"/api/v1/flows/{flow_id}/", {"draft": _menu_graph(), "name": "Menu"}, format="json")
        stamp = detail.json()["updated"]
        published = client.post(f"/api/v1/flows/{flow_id}/publish/")
        assert published.status_code == 201 and published.json()["number"] == 1
        assert FlowVersion.objects.get(flow_id=flow_id, number=1).published_by == manager
        assert client.get(f"/api/v1/flows/{flow_id}/").json()["trigger"] == {"kind": "keyword", "keywords": ["menu"]}

        # A second admin's save over a stale copy is refused, nothing overwritten.
        other = graph_of(node("x", "send_message", text="v2"))
        assert client.patch(f"/api/v1/flows/{flow_id}/", {"draft": other}, format="json").status_code == 200
        stale = client.patch(f"/api/v1/flows/{flow_id}/", {"draft": unfinished, "updated": stamp}, format="json")
        assert stale.status_code == 409 and stale.json()["code"] == "flow_draft_conflict"
        assert Flow.objects.get(pk=flow_id).draft == other
        assert client.post(f"/api/v1/flows/{flow_id}/publish/").json()["number"] == 2

        versions = client.get(f"/api/v1/flows/{flow_id}/versions/").json()
        assert [v["number"] for v in versions] == [2, 1] and versions[0]["published_by"] == manager.email
        assert client.get(f"/api/v1/flows/{flow_id}/versions/1/").json()["graph"] == _menu_graph()
        assert client.get(f"/api/v1/flows/{flow_id}/versions/9/").status_code == 404

        reverted = client.post(f"/api/v1/flows/{flow_id}/revert/", {"version": 1}, format="json")
        assert reverted.status_code == 200 and reverted.json()["draft"] == _menu_graph()
        assert FlowVersion.objects.filter(flow_id=flow_id).count() == 2  # versions never change
        missing = client.post(f"/api/v1/flows/{flow_id}/revert/", {"version": 7}, format="json")
        assert missing.status_code == 404 and missing.json()["code"] == "flow_version_not_found"

        activated = client.post(f"/api/v1/flows/{flow_id}/activate/", {"active": True}, format="json")
        assert activated.status_code == 200 and activated.json()["is_active"] is True
        fresh = client.post("/api/v1/flows/", {"name": "Empty"}, format="json").json()["id"]
        unpublished = client.post(f"/api/v1/flows/{fresh}/activate/", {"active": True}, format="json")
        assert unpublished.status_code == 400 and unpublished.json()["code"] == "flow_not_published"

        def count() -> int:
            with CaptureQueriesContext(connection) as queries:
                assert client.get("/api/v1/flows/").status_code == 200
            return len(queries)

        few = count()
        for index in range(3):
            Flow.objects.create(name=f"more {index}")
        assert count() == few  # constant in the number of flows
        listing = client.get("/api/v1/flows/").json()
        assert {"Menu", "Empty"} <= {row["name"] for row in listing}
        assert next(row for row in listing if row["id"] == flow_id)["latest_version"] == 2


def test_roles_and_tenants_keep_flows_apart(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        flow = Flow.objects.create(name="Alpha secret flow", draft=_menu_graph())
        agent = _client(tenant_a, _user(AGENT))
        assert agent.get("/api/v1/flows/").status_code == 403
        assert agent.get(f"/api/v1/flows/{flow.pk}/").json()["code"] == "permission_denied"
        assert agent.patch(f"/api/v1/flows/{flow.pk}/", {"name": "x"}, format="json").status_code == 403
        assert agent.post(f"/api/v1/flows/{flow.pk}/publish/").status_code == 403
        assert agent.post(f"/api/v1/flows/{flow.pk}/test-run/", {"text": "menu"}, format="json").status_code == 403
        assert APIClient(HTTP_HOST=tenant_a.domain).get("/api/v1/flows/").status_code == 401
        assert not FlowVersion.objects.filter(flow=flow).exists()
        # An admin has every flow permission.
        assert _client(tenant_a, _user(ADMIN)).get(f"/api/v1/flows/{flow.pk}/").status_code == 200

    with tenant_context(tenant_b.organization):
        Flow.objects.filter(pk=flow.pk).delete()  # the same id may exist in the other schema
        other = _client(tenant_b, _user(SUPPORT_MANAGER))
        assert all(row["name"] != "Alpha secret flow" for row in other.get("/api/v1/flows/").json())
        assert other.get(f"/api/v1/flows/{flow.pk}/").status_code == 404
        assert other.get(f"/api/v1/flows/{flow.pk}/export/").status_code == 404
        assert other.post(f"/api/v1/flows/{flow.pk}/publish/").status_code == 404
        assert other.post(f"/api/v1/flows/{flow.pk}/test-run/", {"text": "menu"}, format="json").status_code == 404

    with tenant_context(tenant_a.organization):
        assert Flow.objects.get(pk=flow.pk).name == "Alpha secret flow"
        # A token of tenant B's user means nothing on tenant A's host.
        assert other.get("/api/v1/flows/", HTTP_HOST=tenant_a.domain).status_code == 401


def test_export_then_import_round_trips_and_bad_files_get_clear_errors(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        client = _client(tenant_a, _user(SUPPORT_MANAGER))
        source = Flow.objects.create(name="Menu for export", draft=_menu_graph(), priority=3)
        exported = client.get(f"/api/v1/flows/{source.pk}/export/")
        assert exported.status_code == 200
        assert exported["Content-Disposition"] == f'attachment; filename="menu-for-export-{source.pk}.json"'
        document = json.loads(exported.content)
        assert document["format"] == "imaradesk-flow" and document["graph"] == _menu_graph()

        upload = io.BytesIO(exported.content)
        upload.name = "menu.json"
        created = client.post("/api/v1/flows/import/", {"file": upload}, format="multipart")
        assert created.status_code == 201, created.json()
        assert created.json()["name"] == "Menu for export" and created.json()["priority"] == 3
        assert created.json()["draft"] == _menu_graph()

        # Replacing a draft keeps the flow's published versions.
        target = Flow.objects.create(name="Target")
        target_id = target.pk
        version = FlowVersion.objects.create(flow=target, number=1, graph=target.draft)
        replaced = client.post(f"/api/v1/flows/{target_id}/import/", {"graph": _menu_graph()}, format="json")
        assert replaced.status_code == 200 and replaced.json()["draft"] == _menu_graph()
        assert FlowVersion.objects.get(pk=version.pk).graph == target.draft
        bare = client.post(f"/api/v1/flows/{target_id}/import/", _menu_graph(), format="json")
        assert bare.status_code == 200

        def refused(content: bytes) -> dict[str, Any]:
            upload = io.BytesIO(content)
            upload.name = "bad.json"
            response = client.post(f"/api/v1/flows/{target_id}/import/", {"file": upload}, format="multipart")
            assert response.status_code == 400, response.content
            body: dict[str, Any] = response.json()
            assert body["code"] == "flow_import_invalid" and body["message"]
            return body

        assert refused(b"{not json")["extra"]["reason"] == "json"
        assert refused(b" " * (MAX_IMPORT_BYTES + 1))["extra"]["reason"] == "size"
        assert refused(b"\xff\xfe")["extra"]["reason"] == "json"
        assert refused(b"[1, 2]")["extra"]["reason"] == "shape"
        assert refused(b'{"hello": 1}')["extra"]["reason"] == "shape"
        assert refused(b'{"format": "other-tool", "graph": {}}')["extra"]["reason"] == "format"
        assert refused(b'{"format": "imaradesk-flow", "format_version": 99, "graph": {}}')["extra"]["reason"] == (
            "format_version"
        )
        two_triggers = {"nodes": [node("a", "trigger"), node("b", "trigger")]}
        body = refused(json.dumps({"graph": two_triggers}).encode())
        assert body["extra"]["reason"] == "graph" and "exactly one Trigger" in body["message"]
        huge = graph_of(*(node(f"n{i}", "connector") for i in range(MAX_NODES + 1)))
        assert "at most" in refused(json.dumps(huge).encode())["message"]
        no_file = client.post(f"/api/v1/flows/{target_id}/import/", {}, format="multipart")
        assert no_file.status_code == 400 and no_file.json()["extra"]["reason"] == "missing"
        assert Flow.objects.get(pk=target_id).draft == _menu_graph()  # nothing half-imported

        # The services round-trip without the API too.
        again = flow_import(raw=flow_export(flow=source))
        assert again.draft == source.draft and again.pk != source.pk


def test_drafts_python_cannot_read_get_clear_400s_naming_the_problem(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        client = _client(tenant_a, _user(ADMIN))
        flow = Flow.objects.create(name="Unfinished", draft=_menu_graph())
        test_run = f"/api/v1/flows/{flow.pk}/test-run/"

        # "Test this flow" on an unfinished draft: a bad trigger pattern, a link to a deleted step.
        typo = graph_of(node("a", "send_message", text="hi"), trigger={"kind": "regex", "pattern": "order("})
        refused = client.post(test_run, {"text": "order 1", "graph": typo}, format="json")
        assert refused.status_code == 400, refused.content
        assert refused.json()["code"] == "flow_graph_invalid" and refused.json()["extra"]["node"] == "start"
        assert "regular expression" in refused.json()["message"]
        dangling = graph_of(node("a", "send_message", {"default": "gone"}, text="hi"))
        refused = client.post(test_run, {"text": "hi", "graph": dangling}, format="json")
        assert refused.status_code == 400, refused.content
        assert refused.json()["extra"]["node"] == "a" and "'gone'" in refused.json()["message"]

        # Patterns re.compile cannot even refuse cleanly (OverflowError, RecursionError).
        for pattern in ("a{4294967296}", "(" * 5000 + ")" * 5000):
            for data in (
                graph_of(node("a", "send_message", text="hi"), trigger={"kind": "regex", "pattern": pattern}),
                graph_of(
                    node(
                        "a",
                        "condition",
                        {"true": "b", "false": "b"},
                        rules=[{"field": "text", "op": "regex", "value": pattern}],
                    ),
                    node("b", "action", action="set_variable", name="x", pattern=pattern),
                ),
            ):
                check = client.post(f"/api/v1/flows/{flow.pk}/check/", {"graph": data}, format="json")
                assert check.status_code == 200, check.content
                assert check.json() and all("regular expression" in p["message"] for p in check.json())
                assert client.post(test_run, {"text": "hi", "graph": data}, format="json").status_code == 400
                Flow.objects.filter(pk=flow.pk).update(draft=data)
                published = client.post(f"/api/v1/flows/{flow.pk}/publish/")
                assert published.status_code == 400 and published.json()["code"] == "flow_graph_invalid"

        # Imports: a format_version that is not a number, a priority the column cannot hold.
        def imported(document: dict[str, Any]) -> Any:
            return client.post("/api/v1/flows/import/", document, format="json")

        for version in ("one", None, [1], 1.5):
            answer = imported({"format": "imaradesk-flow", "format_version": version, "graph": _menu_graph()})
            assert answer.status_code == 400, (version, answer.content)
            assert answer.json()["extra"]["reason"] == "format_version"
        for priority in (10**12, -(10**12), 1001):
            answer = imported({"format_version": 1, "priority": priority, "graph": _menu_graph()})
            assert answer.status_code == 400, (priority, answer.content)
            assert answer.json()["extra"]["reason"] == "priority" and "1000" in answer.json()["message"]
        assert imported({"format_version": "1", "priority": 1000, "graph": _menu_graph()}).status_code == 201


def test_publish_refuses_a_path_longer_than_one_message_may_walk(tenant_a: TenantSetup) -> None:
    from apps.flows.engine import MAX_NODES_PER_EVENT

    def chain(count: int, *, before: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        steps = [node(f"t{i}", "action", {"default": f"t{i + 1}"}, action="tag", value=f"t{i}") for i in range(count)]
        return graph_of(*(before or []), *steps, node(f"t{count}", "send_message", text="done"))

    with tenant_context(tenant_a.organization):
        client = _client(tenant_a, _user(ADMIN))
        # Trigger + 22 actions + a send: 24 steps for one message, which the interpreter stops at 20.
        flow = Flow.objects.create(name="Long", draft=chain(22))
        refused = client.post(f"/api/v1/flows/{flow.pk}/publish/")
        assert refused.status_code == 400, refused.content
        assert refused.json()["code"] == "flow_graph_invalid" and str(MAX_NODES_PER_EVENT) in refused.json()["message"]
        assert refused.json()["extra"]["node"] == "t19"  # the first step a message would not reach
        problems = client.post(f"/api/v1/flows/{flow.pk}/check/", {"graph": flow.draft}, format="json").json()
        assert [p["node"] for p in problems] == ["t19"]
        # Exactly the limit: trigger + 18 actions + a send.
        Flow.objects.filter(pk=flow.pk).update(draft=chain(MAX_NODES_PER_EVENT - 2))
        assert client.post(f"/api/v1/flows/{flow.pk}/publish/").status_code == 201
        # A wait in between resets the count: each message walks its own stretch.
        menu = node("menu", "quick_replies", {"default": "t0"}, text="Go on?", options=YES_NO)
        Flow.objects.filter(pk=flow.pk).update(draft=chain(18, before=[menu]))
        assert client.post(f"/api/v1/flows/{flow.pk}/publish/").status_code == 201


def test_the_test_run_follows_the_draft_and_touches_nothing_real(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        client = _client(tenant_a, _user(SUPPORT_MANAGER))
        data = graph_of(
            node("hi", "send_message", {"default": "menu"}, text="Hello {{last_message}}"),
            node(
                "menu",
                "quick_replies",
                {"track": "tag", "agent": "ticket", "invalid": "ticket"},
                text="How can we help?",
                options=MENU,
                variable="topic",
            ),
            node("tag", "action", {"default": "confirm"}, action="tag", value="vip"),
            node("confirm", "quick_replies", {"default": "vip"}, text="Anything else?", options=YES_NO),
            node("vip", "condition", {"true": "wait", "false": "ticket"}, rules=[{"field": "tag", "value": "vip"}]),
            node("wait", "delay", {"default": "done"}, seconds=60),
            node("done", "send_message", text="Your order ({{topic}}) ships today"),
            node("ticket", "action", {"default": "people"}, action="create_ticket", value="needs help"),
            node("people", "human_handoff", text="Connecting you", reason="asked"),
            trigger={"kind": "keyword", "keywords": ["menu"]},
        )
        assert g.graph_problems(data) == []
        flow = Flow.objects.create(name="Test me", draft=data)
        before = (
            Conversation.objects.count(),
            Message.objects.count(),
            Ticket.objects.count(),
            FlowRun.objects.count(),
        )
        url = f"/api/v1/flows/{flow.pk}/test-run/"

        silent = client.post(url, {"text": "good morning"}, format="json").json()
        assert silent["started"] is False and "would not start" in silent["notice"] and silent["session"] is None

        first = client.post(url, {"text": "menu please"}, format="json").json()
        assert [r["text"] for r in first["replies"]] == ["Hello menu please", "How can we help?"]
        assert first["replies"][1]["kind"] == "buttons"
        assert [c["id"] for c in first["replies"][1]["choices"]] == ["track", "agent"]
        assert [s["node_id"] for s in first["steps"]] == ["start", "hi", "menu"]
        assert first["session"]["status"] == "waiting" and first["session"]["node_id"] == "menu"

        tapped = client.post(
            url, {"text": "Track an order", "choice_id": "track", "session": first["session"]}, format="json"
        ).json()
        assert [(s["node_id"], s["branch"]) for s in tapped["steps"]] == [
            ("menu", "track"),
            ("tag", "default"),
            ("confirm", "wait"),
        ]
        assert [e["kind"] for e in tapped["effects"]] == ["tag"]
        assert tapped["session"]["variables"]["topic"] == "track" and tapped["session"]["tags"] == ["vip"]

        # The simulated tag counts for the next message's condition.
        confirmed = client.post(url, {"text": "yes", "session": tapped["session"]}, format="json").json()
        assert [(s["node_id"], s["branch"]) for s in confirmed["steps"]] == [
            ("confirm", "yes"),
            ("vip", "true"),
            ("wait", "wait"),
        ]
        assert [e["kind"] for e in confirmed["effects"]] == ["wait"] and "Skip" in confirmed["notice"]

        resumed = client.post(url, {"resume": True, "session": confirmed["session"]}, format="json").json()
        assert [r["text"] for r in resumed["replies"]] == ["Your order (track) ships today"]
        assert resumed["session"]["status"] == "finished"

        # The other path reports a ticket and a hand-off without creating either.
        again = client.post(url, {"text": "menu"}, format="json").json()
        out = client.post(url, {"text": "nonsense", "session": again["session"]}, format="json").json()
        assert out["steps"][0]["branch"] == "wait"  # re-prompted once
        out = client.post(url, {"text": "Talk to us", "session": out["session"]}, format="json").json()
        assert [e["kind"] for e in out["effects"]] == ["ticket", "handoff"]
        assert out["replies"][-1]["text"] == "Connecting you"

        # The canvas's unsaved graph runs instead of the saved draft when given.
        unsaved = graph_of(node("x", "send_message", text="Unsaved hello"))
        assert client.post(url, {"text": "hi", "graph": unsaved}, format="json").json()["replies"][0]["text"] == (
            "Unsaved hello"
        )
        stale = client.post(url, {"text": "hi", "graph": unsaved, "session": first["session"]}, format="json")
        assert stale.status_code == 400 and stale.json()["code"] == "flow_test_session_invalid"
        assert client.post(url, {"text": "  "}, format="json").status_code == 400
        bad = client.post(url, {"text": "menu", "session": {"node_id": "menu", "status": "dancing"}}, format="json")
        assert bad.status_code == 400
        assert client.post(url, {"text": "menu", "session": [1]}, format="json").status_code == 400

        after = (Conversation.objects.count(), Message.objects.count(), Ticket.objects.count(), FlowRun.objects.count())
        assert after == before


def test_the_test_run_says_a_marketing_template_skips_customers_who_opted_out(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        for name, category in (("weekly_offer", "MARKETING"), ("order_ready", "UTILITY")):
            MessageTemplate.objects.create(
                account=tenant_a.whatsapp, name=name, language="en", category=category, status="APPROVED",
                synced_at=timezone.now(),
            )  # fmt: skip
        data = graph_of(
            node("offer", "send_message", {"default": "update"}, template={"name": "weekly_offer", "language": "en"}),
            node("update", "send_message", template={"name": "order_ready", "language": "en"}),
        )
        result = flow_test_run(graph_data=data, session=None, message=SimulatedMessage(text="hi"))
    # The pretend customer has not opted out: both go, and the panel says who would not get the offer.
    assert [r["kind"] for r in result["replies"]] == ["template", "template"]
    assert [e["kind"] for e in result["effects"]] == ["consent"]
    assert "weekly_offer" in result["effects"][0]["detail"] and "STOP" in result["effects"][0]["detail"]
    assert result["session"]["status"] == "finished"


def test_the_builder_page_is_for_staff_with_the_flow_permission(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        flow = Flow.objects.create(name="Page flow")
        page = f"/flows/{flow.pk}/builder/"
        anonymous = tenant_a.client().get(page)
        assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")

        agent = _user(AGENT)
        client = tenant_a.client()
        client.force_login(agent)
        assert client.get(page).status_code == 403

        manager = _user(SUPPORT_MANAGER)
        client.force_login(manager)
        response = client.get(page)
        assert response.status_code == 200
        body = response.content.decode()
        assert "/static/drawflow/drawflow.min.js" in body and "builder-config" in body
        assert f"/api/v1/flows/{flow.pk}/" in body
        change = client.get(f"/admin/flows/flow/{flow.pk}/change/")
        assert change.status_code == 200 and page in change.content.decode()
        assert page in client.get("/admin/flows/flow/").content.decode()

    with tenant_context(tenant_b.organization):
        Flow.objects.filter(pk=flow.pk).delete()
        other = tenant_b.client()
        other.force_login(_user(SUPPORT_MANAGER))
        assert other.get(page).status_code == 404


class _OrderApi:
    """A real loopback HTTP server standing in for a shop's order API."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                owner.hits.append(f"{self.command} {self.path}")
                body = b'{"status": "shipped"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


def test_the_test_run_reads_for_real_but_writes_nothing(tenant_a: TenantSetup, settings: Any) -> None:
    server = _OrderApi()
    try:
        data = graph_of(
            node(
                "look",
                "api_call",
                {"success": "update", "error": "sorry"},
                url=server.url("/orders/{{last_message}}"),
                variable="order",
            ),
            node(
                "update",
                "api_call",
                {"success": "kb", "error": "sorry"},
                method="POST",
                url=server.url("/notify"),
                body="x",
            ),
            node("kb", "knowledge_base", {"answered": "said", "no_answer": "said"}),
            node("said", "send_message", text="Order status: {{order.status}}"),
            node("sorry", "send_message", text="The shop's system is not answering"),
        )
        with tenant_context(tenant_a.organization):
            gaps = KnowledgeGap.objects.count()
            settings.FLOWS_EGRESS_ALLOW_LOOPBACK = True
            result = flow_test_run(graph_data=data, session=None, message=SimulatedMessage(text="A17"))
            assert [(s["node_id"], s["branch"]) for s in result["steps"]] == [
                ("start", "default"),
                ("look", "success"),
                ("update", "success"),
                ("kb", "no_answer"),  # this tenant has no published article
                ("said", "default"),
            ]
            assert result["replies"] == [{"kind": "text", "text": "Order status: shipped"}]
            assert server.hits == ["GET /orders/A17"]  # the POST was reported, not sent
            assert [e["kind"] for e in result["effects"]] == ["http", "http"]
            assert "not sent" in result["effects"][1]["detail"]
            assert result["analysis"] == {}  # nothing reads intent, sentiment or language
            assert KnowledgeGap.objects.count() == gaps  # a test question is not a customer's gap

            # The API Call's SSRF guard holds in a test run too.
            settings.FLOWS_EGRESS_ALLOW_LOOPBACK = False
            refused = flow_test_run(graph_data=data, session=None, message=SimulatedMessage(text="A17"))
            assert [(s["node_id"], s["branch"]) for s in refused["steps"]][1] == ("look", "error")
            assert refused["replies"][0]["text"] == "The shop's system is not answering"
            assert "loopback" in refused["effects"][-1]["detail"]
            assert server.hits == ["GET /orders/A17"]
    finally:
        server.httpd.shutdown()


def test_the_test_run_analyses_the_message_when_a_condition_reads_it(tenant_a: TenantSetup) -> None:
    data = graph_of(
        node("swahili", "condition", {"true": "sw", "false": "other"}, rules=[{"field": "language", "value": "sw"}]),
        node("sw", "send_message", text="Karibu!"),
        node("other", "send_message", text="Welcome!"),
    )
    with tenant_context(tenant_a.organization):
        text = "Habari za asubuhi, ningependa kujua bei ya bidhaa zenu tafadhali"
        result = flow_test_run(graph_data=data, session=None, message=SimulatedMessage(text=text))
        assert result["analysis"]["language"] == "sw" and set(result["analysis"]) == {"language", "intent", "sentiment"}
        assert result["replies"] == [{"kind": "text", "text": "Karibu!"}]


def test_the_back_office_imports_a_file_as_a_new_flow_and_adds_open_the_builder(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        client = tenant_a.client()
        client.force_login(_user(SUPPORT_MANAGER))
        listing = client.get("/admin/flows/flow/")
        assert "/admin/flows/flow/import/" in listing.content.decode()

        document = {"format": "imaradesk-flow", "format_version": 1, "name": "From a file", "graph": _menu_graph()}
        upload = io.BytesIO(json.dumps(document).encode())
        upload.name = "flow.json"
        imported = client.post("/admin/flows/flow/import/", {"file": upload, "name": ""})
        flow = Flow.objects.get(name="From a file")
        assert imported.status_code == 302 and imported["Location"] == f"/flows/{flow.pk}/builder/"
        assert flow.draft == _menu_graph() and not flow.is_active and not flow.versions.exists()

        bad = io.BytesIO(b"not json at all")
        bad.name = "flow.json"
        refused = client.post("/admin/flows/flow/import/", {"file": bad})
        assert refused.status_code == 400 and "not valid JSON" in refused.content.decode()
        assert client.post("/admin/flows/flow/import/", {}).status_code == 400

        added = client.post("/admin/flows/flow/add/", _add_form("Made in the back office"))
        created = Flow.objects.get(name="Made in the back office")
        assert added.status_code == 302 and added["Location"] == f"/flows/{created.pk}/builder/"

        agent = tenant_a.client()
        agent.force_login(_user(AGENT))
        assert agent.get("/admin/flows/flow/import/").status_code == 302  # to the sign-in page: not staff


def _add_form(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "trigger": json.dumps({"kind": "catch_all"}),
        "priority": "0",
        "draft": json.dumps({"nodes": [{"id": "start", "type": "trigger", "config": {}, "next": {}}]}),
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }


def test_text_postgresql_cannot_store_in_a_draft_gets_a_400_not_a_500(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        client = _client(tenant_a, _user(ADMIN))
        flow = Flow.objects.create(name="Kept", draft=_menu_graph())

        def sent(method: str, path: str, payload: dict[str, Any]) -> Any:
            # json.dumps escapes a lone surrogate, as a browser's JSON.stringify does.
            return getattr(client, method)(path, data=json.dumps(payload), content_type="application/json")

        # A NUL and an unpaired surrogate: valid JSON, but jsonb refuses both.
        for bad in ("\x00", "\ud800"):
            in_text = graph_of(node("a", "send_message", text=f"Hello{bad}"))
            in_key = {**_menu_graph(), f"note{bad}": "x"}
            for graph in (in_text, in_key):
                created = sent("post", "/api/v1/flows/", {"name": "Bad", "draft": graph})
                assert created.status_code == 400, (repr(bad), created.content)
                assert created.json()["code"] == "flow_graph_invalid" and "U+" in created.json()["message"]
                saved = sent("patch", f"/api/v1/flows/{flow.pk}/", {"draft": graph})
                assert saved.status_code == 400, (repr(bad), saved.content)
                assert saved.json()["code"] == "flow_graph_invalid"
                imported = sent("post", "/api/v1/flows/import/", {"graph": graph})
                assert imported.status_code == 400, (repr(bad), imported.content)
                assert imported.json()["code"] == "flow_import_invalid"
                assert imported.json()["extra"]["reason"] == "graph"
                upload = io.BytesIO(json.dumps({"graph": graph}).encode())
                upload.name = "bad.json"
                replaced = client.post(f"/api/v1/flows/{flow.pk}/import/", {"file": upload}, format="multipart")
                assert replaced.status_code == 400, (repr(bad), replaced.content)
                assert replaced.json()["code"] == "flow_import_invalid"
        assert Flow.objects.get(pk=flow.pk).draft == _menu_graph()
        assert not Flow.objects.filter(name="Bad").exists()


def test_json_nested_beyond_any_flow_gets_a_400_not_a_500(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        client = _client(tenant_a, _user(ADMIN))
        flow = Flow.objects.create(name="Kept too", draft=_menu_graph())

        def nested(depth: int) -> str:
            return "[" * depth + "]" * depth

        # Deep enough to exhaust the JSON parser's recursion; deep enough to pass it but not
        # the database's; and the same two in an uploaded export.
        for depth in (100_000, 950):
            menu = json.dumps(_menu_graph())
            body = '{"name": "Deep", "draft": ' + menu[:-1] + ', "x": ' + nested(depth) + "}}"
            created = client.post("/api/v1/flows/", data=body, content_type="application/json")
            assert created.status_code == 400, (depth, created.content)
            assert created.json()["code"] == "parse_error" and created.json()["message"]
            upload = io.BytesIO(('{"graph": ' + menu[:-1] + ', "x": ' + nested(depth) + "}}").encode())
            upload.name = "deep.json"
            replaced = client.post(f"/api/v1/flows/{flow.pk}/import/", {"file": upload}, format="multipart")
            assert replaced.status_code == 400, (depth, replaced.content)
            assert replaced.json()["code"] == "flow_import_invalid" and replaced.json()["extra"]["reason"] == "json"
        # Every JSON endpoint reads its body through the same parser.
        for path in ("/api/v1/tickets/", f"/api/v1/flows/{flow.pk}/test-run/", "/api/v1/knowledge/answer/"):
            response = client.post(path, data=nested(100_000), content_type="application/json")
            assert response.status_code == 400, (path, response.content)
            assert response.json()["code"] == "parse_error"
        assert Flow.objects.get(pk=flow.pk).draft == _menu_graph()
        assert not Flow.objects.filter(name="Deep").exists()
