"""The ticket queue in real headless Chromium: countdowns, risk reasons, a breach announced live.

A manager of one business and a manager of another have the queue open. An urgent ticket's
first response falls due (its deadline is moved into the past) and the Beat sweep's task
records the breach: the first manager's page announces it and re-renders the ticket, with
no reload; the other business's page hears nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from django.db import connection, connections
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.roles import SUPPORT_MANAGER
from apps.accounts.services import user_create
from apps.core.tenancy import tenant_context
from apps.tickets.models import SLAPolicy, Ticket
from apps.tickets.services.tickets import ticket_create
from apps.tickets.tasks import tickets_sla_sweep_task
from tests.conftest import PASSWORD, LiveServer, TenantSetup

pytestmark = pytest.mark.usefixtures("committed_db")
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _connections_closed() -> Iterator[None]:
    yield
    connections.close_all()  # see test_browser_simulator: Playwright's context gets its own connection


@pytest.fixture
def managers(tenant_a: TenantSetup, tenant_b: TenantSetup) -> Iterator[tuple[User, User]]:
    with tenant_context(tenant_a.organization):
        SLAPolicy.objects.filter(priority__in=["urgent", "low"]).update(is_active=False)
        urgent = SLAPolicy.objects.create(
            name="Browser urgent", priority="urgent", first_response_minutes=20, resolution_minutes=240
        )
        low = SLAPolicy.objects.create(
            name="Browser low", priority="low", first_response_minutes=600, resolution_minutes=6000
        )
        alpha = user_create(email="queue-amina@alpha.test", password=PASSWORD, role=SUPPORT_MANAGER)
    with tenant_context(tenant_b.organization):
        beta = user_create(email="queue-zuri@beta.test", password=PASSWORD, role=SUPPORT_MANAGER)
    yield alpha, beta
    with tenant_context(tenant_a.organization):
        Ticket.objects.all().delete()
        urgent.delete()
        low.delete()
        User.objects.filter(email__startswith="queue-").delete()
    with tenant_context(tenant_b.organization):
        Ticket.objects.all().delete()
        User.objects.filter(email__startswith="queue-").delete()


def _in_tenant(tenant: TenantSetup, action: Callable[[], T]) -> T:
    """Run in another thread: Playwright's loop owns this one, and publishing a live event needs a loop-free one."""

    def run() -> T:
        try:
            with tenant_context(tenant.organization):
                return action()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=60)


def _signed_in_queue(browser: Any, server: LiveServer, tenant: TenantSetup, email: str, width: int = 1280) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.goto(server.url(tenant, "/login/?next=/tickets/"))
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/tickets/")
    page.locator("#connection.live").wait_for(timeout=20_000)  # the socket is up
    return page


def test_a_breach_appears_live_with_its_countdown_and_reasons(
    browser: Any,
    live_server_tenants: LiveServer,
    tenant_a: TenantSetup,
    tenant_b: TenantSetup,
    managers: tuple[User, User],
) -> None:
    urgent = _in_tenant(tenant_a, lambda: ticket_create(title="Card charged twice", by=None, priority="urgent"))
    calm = _in_tenant(tenant_a, lambda: ticket_create(title="Invoice copy", by=None, priority="low"))
    _in_tenant(tenant_b, lambda: ticket_create(title="Beta's own ticket", by=None, priority="urgent"))

    errors: list[str] = []
    alpha = _signed_in_queue(browser, live_server_tenants, tenant_a, managers[0].email)
    beta = _signed_in_queue(browser, live_server_tenants, tenant_b, managers[1].email, width=390)  # a phone
    for page in (alpha, beta):
        page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        row = alpha.locator(f"#ticket-{urgent.pk}")
        row.wait_for(timeout=10_000)
        # Highest risk first; the reasons in words; a ticking countdown to the first response.
        assert alpha.locator("#queue tr[data-ticket]").first.get_attribute("data-ticket") == str(urgent.pk)
        assert "Urgent priority (+25)" in row.inner_text()
        assert re.search(r"SLA due in (19|20) min \(\+40\)", row.inner_text())
        countdown = row.locator(".countdown")
        assert "First response" in row.locator(".sla").inner_text()
        first = countdown.inner_text()
        assert first.startswith("due in ")
        alpha.wait_for_function(
            "([el, before]) => el.textContent !== before", arg=[countdown.element_handle(), first], timeout=5_000
        )
        assert "Beta's own ticket" not in alpha.content()
        assert "Card charged twice" not in beta.content() and beta.locator(f"#ticket-{calm.pk}").count() == 0

        # Keyboard: the arrows move between tickets.
        row.focus()
        alpha.keyboard.press("ArrowDown")
        assert alpha.evaluate("document.activeElement.dataset.ticket") == str(calm.pk)

        # The deadline passes; the Beat sweep's task records the breach.
        alpha.evaluate("window.__sameDocument = true")
        with tenant_context(tenant_a.organization):
            Ticket.objects.filter(pk=urgent.pk).update(first_response_due_at=timezone.now() - timedelta(minutes=2))
        assert _in_tenant(tenant_a, tickets_sla_sweep_task) >= 1

        announcement = alpha.locator("#announcements .announcement.breach")
        announcement.wait_for(timeout=20_000)
        assert f"#{urgent.pk}" in announcement.inner_text() and "first response" in announcement.inner_text()
        alpha.locator(f"#ticket-{urgent.pk}.breached").wait_for(timeout=20_000)
        refreshed = alpha.locator(f"#ticket-{urgent.pk}")
        assert re.search(r"SLA breached \d+ min ago \(\+40\)", refreshed.inner_text())
        assert refreshed.locator(".countdown").inner_text().startswith("overdue by ")
        assert alpha.evaluate("window.__sameDocument") is True  # no reload

        # The other business heard nothing.
        assert beta.locator("#announcements .announcement").count() == 0
        assert errors == []
    finally:
        for page in (alpha, beta):
            page.context.close()
