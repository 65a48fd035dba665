"""The visual flow builder in a real browser: drag, connect, configure, test, publish, then chat.

Headless Chromium drags four steps into a flow with the real mouse (Start → Ask with
buttons → Check a condition → Send a message), fills their settings, tries the draft in the
"Test this flow" panel, publishes and switches it on; then the customer simulator sends the
keyword through the real webhook and a real Celery worker, and the flow's replies come back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from apps.core.tenancy import tenant_context, use_public_schema
from apps.flows.models import Flow
from apps.flows.services import flow_publish
from apps.flows.tests.fakes import graph_of, node
from apps.tenants.models import WebhookEvent, WhatsAppAccount
from tests.conftest import LiveServer, TenantSetup, tenant_conversations_wipe
from tests.test_browser_simulator import _eventually, _sign_in
from tests.test_flow_builder_api import _menu_graph

pytestmark = pytest.mark.usefixtures("committed_db")

CUSTOMER = "254700000077"
QUESTION = "Do you have your order number?"
YES = "Yes, I have it"
ANSWER = "Great! Please type your order number."


@pytest.fixture(autouse=True)
def _connections_closed() -> Iterator[None]:
    yield
    connections.close_all()


@pytest.fixture
def builder_tenant(tenant_a: TenantSetup) -> Iterator[TenantSetup]:
    """Tenant A on its sandbox number (the simulator's transport); its flows and chats removed after."""
    WhatsAppAccount.objects.filter(pk=tenant_a.whatsapp.pk).update(transport=WhatsAppAccount.Transport.SANDBOX)
    yield tenant_a
    use_public_schema()
    WebhookEvent.objects.filter(tenant=tenant_a.organization).delete()
    tenant_conversations_wipe(tenant_a)  # their flow runs go with them
    with tenant_context(tenant_a.organization):
        Flow.objects.filter(name__startswith="Browser ").delete()
    use_public_schema()
    WhatsAppAccount.objects.filter(pk=tenant_a.whatsapp.pk).update(transport=WhatsAppAccount.Transport.CLOUD)


def _step(page: Any, node_id: str) -> Any:
    return page.locator(f'.drawflow-node:has(.df-node[data-node="{node_id}"])')


def _center(locator: Any) -> tuple[float, float]:
    box = locator.bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=12)
    page.mouse.up()


def _drop_step(page: Any, node_type: str, x: float, y: float) -> None:
    """Drag a step from the palette to a point of the canvas (relative to its top-left corner)."""
    item = page.locator(f'#palette li[data-type="{node_type}"]')
    item.scroll_into_view_if_needed()
    canvas = page.locator("#canvas").bounding_box()
    _drag(page, _center(item), (canvas["x"] + x, canvas["y"] + y))


def _connect(page: Any, source: str, output: int, target: str) -> None:
    _drag(
        page,
        _center(_step(page, source).locator(f".outputs .output_{output}")),
        _center(_step(page, target).locator(".inputs .input_1")),
    )


def _select(page: Any, node_id: str) -> Any:
    _step(page, node_id).locator(".df-title").click()
    form = page.locator(f'#settings form[data-node="{node_id}"]')
    form.wait_for()
    return form


def test_build_a_flow_by_drag_and_drop_publish_it_and_the_simulator_follows_it(
    browser: Any, live_server_tenants: LiveServer, celery_worker: str, builder_tenant: TenantSetup
) -> None:
    tenant = builder_tenant
    with tenant_context(tenant.organization):
        flow = Flow.objects.create(name="Browser order help")
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        # From the back office's flow page to the builder.
        _sign_in(page, live_server_tenants, tenant, f"/admin/flows/flow/{flow.pk}/change/")
        page.get_by_role("link", name="Open builder").click()
        page.wait_for_url(f"**/flows/{flow.pk}/builder/")
        page.locator("body[data-builder-ready]").wait_for()
        assert page.locator("#palette li").count() == 13

        # Three steps dragged from the palette onto the canvas with the mouse.
        _drop_step(page, "quick_replies", 380, 80)
        _drop_step(page, "condition", 380, 360)
        _drop_step(page, "send_message", 720, 360)
        for node_id in ("quick_replies_1", "condition_1", "send_message_1"):
            assert _step(page, node_id).count() == 1

        # Links: Start → question; both answers → condition; yes → message; no → ask again.
        _connect(page, "start", 1, "quick_replies_1")
        _connect(page, "quick_replies_1", 1, "condition_1")
        _connect(page, "quick_replies_1", 2, "condition_1")
        _connect(page, "condition_1", 1, "send_message_1")
        _connect(page, "condition_1", 2, "quick_replies_1")
        assert page.locator("#canvas svg.connection").count() == 5

        # Settings in the side panel, with the publish check's message until a step is right.
        form = _select(page, "start")
        form.locator("select[name=kind]").select_option("keyword")
        form = page.locator('#settings form[data-node="start"]')
        form.locator("input[name=keywords]").fill("")
        page.locator("#settings .node-problem", has_text="keyword").wait_for()
        form.locator("input[name=keywords]").fill("order")
        form = _select(page, "quick_replies_1")
        form.locator("textarea[name=text]").fill(QUESTION)
        form.locator("input[name=option-0]").fill(YES)
        form.locator("input[name=option-1]").fill("No")
        form = _select(page, "condition_1")
        form.locator("input[name=rule-value-0]").fill("yes")
        form = _select(page, "send_message_1")
        form.locator("textarea[name=text]").fill("")
        page.locator("#problems li", has_text="text is required").wait_for()
        form.locator("textarea[name=text]").fill(ANSWER)
        page.locator("#problems h3", has_text="Ready to publish").wait_for()
        assert _step(page, "quick_replies_1").locator(".output_1").get_attribute("data-label") == YES

        # Try the draft in the test panel: nothing goes to WhatsApp.
        page.click("#test-toggle")
        page.fill("#test-text", "I have an order question")
        page.press("#test-text", "Enter")
        page.locator("#test-thread .test-msg.business", has_text=QUESTION).wait_for()
        page.locator("#test-thread").get_by_role("button", name=YES).click()
        page.locator("#test-thread .test-msg.business", has_text=ANSWER).wait_for()
        assert "send_message_1" in page.locator("#test-path").inner_text()

        # Save, publish and switch on.
        page.click("#publish")
        page.locator("#message", has_text="Published as version 1").wait_for()
        page.check("#active")

        def live() -> bool:
            with tenant_context(tenant.organization):
                return Flow.objects.filter(pk=flow.pk, is_active=True, versions__number=1).exists()

        _eventually(live)
        with tenant_context(tenant.organization):
            saved = Flow.objects.get(pk=flow.pk)
            steps = {n["id"]: n for n in saved.draft["nodes"]}
            assert saved.trigger == {"kind": "keyword", "keywords": ["order"]}
            assert steps["start"]["next"] == {"default": "quick_replies_1"}
            assert steps["quick_replies_1"]["next"] == {"option_1": "condition_1", "option_2": "condition_1"}
            assert steps["condition_1"]["next"] == {"true": "send_message_1", "false": "quick_replies_1"}
            assert steps["send_message_1"]["config"]["text"] == ANSWER

        # A customer on the simulator: the keyword starts the published flow.
        page.goto(live_server_tenants.url(tenant, "/simulator/"))
        page.fill("#wa-id", CUSTOMER)
        page.dispatch_event("#wa-id", "change")
        page.fill("#text", "where is my order")
        page.click("#composer button[type=submit]")
        page.locator("#thread li.msg.business", has_text=QUESTION).wait_for(timeout=60_000)
        page.locator("#thread").get_by_role("button", name=YES).click()
        page.locator("#thread li.msg.business", has_text=ANSWER).wait_for(timeout=60_000)
        assert errors == []
    finally:
        context.close()


def test_revert_export_import_and_delete_in_the_builder(
    browser: Any, live_server_tenants: LiveServer, builder_tenant: TenantSetup
) -> None:
    tenant = builder_tenant
    with tenant_context(tenant.organization):
        flow = Flow.objects.create(name="Browser versions", draft=_menu_graph())
        flow_publish(flow=flow, by=None)
        flow.draft = graph_of(node("x", "send_message", text="Second try"))
        flow.save()
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        _sign_in(page, live_server_tenants, tenant, f"/flows/{flow.pk}/builder/")
        page.locator("body[data-builder-ready]").wait_for()
        assert page.locator("#canvas .drawflow-node").count() == 2

        # Put version 1 back in the draft: its five steps come back on the canvas and in the database.
        page.select_option("#versions", "1")
        page.click("#revert")
        _step(page, "people").wait_for()
        assert page.locator("#canvas .drawflow-node").count() == 5
        with tenant_context(tenant.organization):
            assert Flow.objects.get(pk=flow.pk).draft == _menu_graph()

        # Export downloads the draft as a .json file.
        with page.expect_download() as download_info:
            page.click("#export")
        download = download_info.value
        assert download.suggested_filename == f"browser-versions-{flow.pk}.json"
        exported = json.loads(Path(download.path()).read_text())
        assert exported["format"] == "imaradesk-flow" and exported["graph"] == _menu_graph()

        # Import a file over the draft; a broken file says what is wrong and changes nothing.
        page.set_input_files(
            "#import-file", files=[{"name": "broken.json", "mimeType": "application/json", "buffer": b"{oops"}]
        )
        page.locator("#message", has_text="not valid JSON").wait_for()
        other = {"nodes": [node("start", "trigger", {"default": "hi"}), node("hi", "send_message", text="Imported hi")]}
        page.set_input_files(
            "#import-file",
            files=[{"name": "other.json", "mimeType": "application/json", "buffer": json.dumps(other).encode()}],
        )
        _step(page, "hi").locator(".df-summary", has_text="Imported hi").wait_for()
        assert page.locator("#canvas .drawflow-node").count() == 2

        # Delete a step from its side panel, then save: the saved draft no longer has it or its link.
        _select(page, "hi")
        page.click("#settings .delete-step")
        assert _step(page, "hi").count() == 0
        page.click("#save")
        page.locator("#message", has_text="Draft saved").wait_for()
        with tenant_context(tenant.organization):
            saved = Flow.objects.get(pk=flow.pk)
            assert [n["id"] for n in saved.draft["nodes"]] == ["start"]
            assert saved.draft["nodes"][0]["next"] == {}
            assert saved.versions.count() == 1
        assert errors == []
    finally:
        context.close()
