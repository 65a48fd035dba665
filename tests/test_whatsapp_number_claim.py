"""A WhatsApp number is connected only by whoever proves it is theirs.

The routing table (phone-number ID → tenant) is shared by every tenant, and Meta's webhooks,
signed with the platform's secret, follow it. A tenant that could register a number it does
not own would receive that number's customers' messages.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils.translation import gettext, override

from apps.accounts.models import User
from apps.tenants.management.commands.demo_setup import DEMO_PHONE_NUMBER_ID
from apps.tenants.models import WebhookEvent, WhatsAppAccount
from apps.whatsapp.numbers import whatsapp_number_id_check
from tests import whatsapp_payloads as wp
from tests.conftest import PASSWORD, TenantSetup
from tests.fakes.graph_api import FakeGraphApi, FakeNumber, Reply

pytestmark = pytest.mark.django_db

ADD = "/admin/tenants/whatsappaccount/add/"
VICTIM_ID = "300000000000003"  # a real business's number, not yet on Imaradesk
VICTIM = FakeNumber(token="token-victim", display_phone_number="+254 711 000 333", verified_name="Mama Mboga Ltd")
BETA_OWN = FakeNumber(token="token-beta-own", display_phone_number="+254 722 000 444", verified_name="Beta Ltd")
BETA_OWN_ID = "400000000000004"


@pytest.fixture
def meta(graph_api: FakeGraphApi) -> FakeGraphApi:
    graph_api.phone_numbers[VICTIM_ID] = VICTIM
    graph_api.phone_numbers[BETA_OWN_ID] = BETA_OWN
    return graph_api


def _signed_in(tenant: TenantSetup) -> Client:
    client = tenant.client()
    assert client.post("/admin/login/", {"username": tenant.admin_email, "password": PASSWORD}).status_code == 302
    return client


def _number(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Support",
        "phone_number_id": VICTIM_ID,
        "display_phone_number": "",
        "waba_id": "",
        "transport": "cloud",
        "access_token": "",
        "app_secret": "",
        "verify_token": "",
        "rate_limit_per_second": "80",
        "is_active": "on",
    }
    data.update(fields)
    return data


def _number_reads(graph: FakeGraphApi, number_id: str) -> list[str]:
    """The tokens with which the number was read from Meta."""
    return [
        r.headers.get("Authorization", "")
        for r in graph.requests
        if r.method == "GET" and r.path.split("?")[0].endswith(f"/{number_id}")
    ]


def _routed_to(number_id: str, wamid: str) -> WebhookEvent:
    assert wp.post(wp.text(number_id, wamid, "habari")).status_code == 200
    return WebhookEvent.objects.get(dedup_key=f"m:{wamid}")


def _errors(response: Any) -> str:
    assert response.status_code == 200, "the form was accepted"
    form = response.context["adminform"].form
    return " ".join(str(message) for messages in form.errors.values() for message in messages)


# --- Cloud numbers: the token must read the number -------------------------------------------


def test_a_tenant_cannot_claim_a_number_its_token_does_not_read(tenant_b: TenantSetup, meta: FakeGraphApi) -> None:
    client = _signed_in(tenant_b)
    before = set(WhatsAppAccount.objects.values_list("phone_number_id", "tenant_id"))

    response = client.post(ADD, _number(access_token=BETA_OWN.token))

    assert "cannot read this phone number ID" in _errors(response)
    assert _number_reads(meta, VICTIM_ID) == [f"Bearer {BETA_OWN.token}"]
    assert set(WhatsAppAccount.objects.values_list("phone_number_id", "tenant_id")) == before
    # Meta's webhooks for that number still belong to no one, not to the squatter.
    event = _routed_to(VICTIM_ID, "wamid.SQUAT1")
    assert event.state == WebhookEvent.State.ORPHAN and event.tenant_id is None


def test_a_token_meta_does_not_know_is_refused(tenant_b: TenantSetup, meta: FakeGraphApi) -> None:
    response = _signed_in(tenant_b).post(ADD, _number(access_token="made-up"))
    assert "cannot read this phone number ID" in _errors(response)
    assert not WhatsAppAccount.objects.filter(phone_number_id=VICTIM_ID).exists()


def test_with_the_token_that_reads_it_the_number_is_saved_with_metas_details(
    tenant_b: TenantSetup, meta: FakeGraphApi
) -> None:
    response = _signed_in(tenant_b).post(
        ADD, _number(access_token=VICTIM.token, display_phone_number="+1 555 fake label")
    )

    assert response.status_code == 302, _errors(response)
    account = WhatsAppAccount.objects.get(phone_number_id=VICTIM_ID)
    assert account.tenant_id == tenant_b.organization.pk
    assert account.access_token == VICTIM.token
    # What Meta says the number is, not what was typed.
    assert account.display_phone_number == VICTIM.display_phone_number
    assert account.verified_name == VICTIM.verified_name
    assert account.verified_at is not None
    assert _routed_to(VICTIM_ID, "wamid.OWNED1").tenant_id == tenant_b.organization.pk


def test_when_meta_cannot_be_reached_nothing_is_saved(tenant_b: TenantSetup, meta: FakeGraphApi) -> None:
    client = _signed_in(tenant_b)
    meta.script("phone-number", Reply(503, {"error": {"message": "Service unavailable", "code": 2}}))
    assert "could not be reached to verify" in _errors(client.post(ADD, _number(access_token=VICTIM.token)))

    meta.script("phone-number", Reply(200, delay=2.0))
    with override_settings(WHATSAPP_GRAPH_TIMEOUT=0.3):
        assert "could not be reached to verify" in _errors(client.post(ADD, _number(access_token=VICTIM.token)))

    assert not WhatsAppAccount.objects.filter(phone_number_id=VICTIM_ID).exists()


def test_a_cloud_number_id_is_digits_only(tenant_b: TenantSetup, meta: FakeGraphApi) -> None:
    response = _signed_in(tenant_b).post(
        ADD, _number(phone_number_id=f"{BETA_OWN_ID}/messages", access_token=BETA_OWN.token)
    )
    assert "digits only" in _errors(response)
    assert _number_reads(meta, "messages") == []  # never put into a Graph URL


def test_a_new_token_or_id_on_a_stored_number_is_verified_again(tenant_b: TenantSetup, meta: FakeGraphApi) -> None:
    client = _signed_in(tenant_b)
    number = tenant_b.whatsapp
    url = f"/admin/tenants/whatsappaccount/{number.pk}/change/"
    unchanged = _number(
        name="Beta help desk", phone_number_id=number.phone_number_id, display_phone_number="+254 700 000002"
    )

    # Renaming the number asks Meta nothing (an existing number keeps working if Meta is down).
    assert client.post(url, unchanged).status_code == 302
    assert _number_reads(meta, number.phone_number_id) == []

    # Another token: it must read the number.
    response = client.post(url, {**unchanged, "access_token": BETA_OWN.token})
    assert "cannot read this phone number ID" in _errors(response)
    number.refresh_from_db()
    assert number.access_token == "token-beta"

    # Another number ID under the stored token: the same.
    response = client.post(url, {**unchanged, "phone_number_id": VICTIM_ID})
    assert "cannot read this phone number ID" in _errors(response)
    assert _number_reads(meta, VICTIM_ID) == ["Bearer token-beta"]
    number.refresh_from_db()
    assert number.phone_number_id == "200000000000002"

    # A rotated token that reads it is kept.
    meta.phone_numbers[number.phone_number_id] = FakeNumber("token-beta-rotated", "+254 700 000 002", "Beta")
    assert client.post(url, {**unchanged, "access_token": "token-beta-rotated"}).status_code == 302
    number.refresh_from_db()
    assert number.access_token == "token-beta-rotated"
    assert number.verified_name == "Beta"


def test_the_platform_back_office_verifies_too(tenant_b: TenantSetup, meta: FakeGraphApi) -> None:
    User.objects.create_superuser(username="ops@platform.test", email="ops@platform.test", password=PASSWORD)
    client = Client(HTTP_HOST="localhost")
    assert client.post("/admin/login/", {"username": "ops@platform.test", "password": PASSWORD}).status_code == 302
    data = _number(tenant=str(tenant_b.organization.pk), access_token=BETA_OWN.token)
    assert "cannot read this phone number ID" in _errors(client.post(ADD, data))
    assert client.post(ADD, {**data, "access_token": VICTIM.token}).status_code == 302
    assert WhatsAppAccount.objects.get(phone_number_id=VICTIM_ID).tenant_id == tenant_b.organization.pk


# --- Sandbox numbers never look like Meta's --------------------------------------------------


def test_a_sandbox_number_cannot_take_a_meta_shaped_id(tenant_b: TenantSetup, meta: FakeGraphApi) -> None:
    client = _signed_in(tenant_b)

    response = client.post(ADD, _number(transport="sandbox"))
    assert "must contain a letter" in _errors(response)
    assert not WhatsAppAccount.objects.filter(phone_number_id=VICTIM_ID).exists()

    # Nor can a stored Cloud number become a sandbox one under a Meta-shaped ID.
    number = tenant_b.whatsapp
    url = f"/admin/tenants/whatsappaccount/{number.pk}/change/"
    response = client.post(url, _number(phone_number_id=number.phone_number_id, transport="sandbox"))
    assert "must contain a letter" in _errors(response)

    assert client.post(ADD, _number(transport="sandbox", phone_number_id="beta-sandbox")).status_code == 302
    assert WhatsAppAccount.objects.get(phone_number_id="beta-sandbox").tenant_id == tenant_b.organization.pk
    assert meta.requests == []  # a sandbox number asks Meta nothing


def test_the_demo_sandbox_number_keeps_working(tenant_a: TenantSetup, meta: FakeGraphApi) -> None:
    # The ID demo_setup gives its sandbox number passes the rule, were it typed in.
    whatsapp_number_id_check(phone_number_id=DEMO_PHONE_NUMBER_ID, transport="sandbox")
    demo = WhatsAppAccount.objects.create(
        tenant=tenant_a.organization, name="Demo", phone_number_id=DEMO_PHONE_NUMBER_ID, transport="sandbox"
    )
    url = f"/admin/tenants/whatsappaccount/{demo.pk}/change/"
    data = _number(name="Demo (renamed)", phone_number_id=DEMO_PHONE_NUMBER_ID, transport="sandbox")
    assert _signed_in(tenant_a).post(url, data).status_code == 302
    demo.refresh_from_db()
    assert demo.name == "Demo (renamed)"


# --- Nothing about who has a number ----------------------------------------------------------


def test_a_taken_number_does_not_say_who_has_it(
    tenant_a: TenantSetup, tenant_b: TenantSetup, meta: FakeGraphApi
) -> None:
    alpha_id = tenant_a.whatsapp.phone_number_id
    client = _signed_in(tenant_b)

    # Without proof, a taken number reads exactly like anyone else's: no "already exists".
    taken = _errors(client.post(ADD, _number(phone_number_id=alpha_id, access_token=BETA_OWN.token)))
    free = _errors(client.post(ADD, _number(phone_number_id=VICTIM_ID, access_token=BETA_OWN.token)))
    assert taken.replace(alpha_id, "ID") == free.replace(VICTIM_ID, "ID")
    assert "already" not in taken

    # Its owner (a token that reads it) learns that it is connected, and nothing else.
    meta.phone_numbers[alpha_id] = FakeNumber("token-alpha-business", "+254 700 000001", "Alpha Ltd")
    message = _errors(client.post(ADD, _number(phone_number_id=alpha_id, access_token="token-alpha-business")))
    assert message == "This number is already connected to Imaradesk. If it is yours, contact support."

    WhatsAppAccount.objects.create(
        tenant=tenant_a.organization, name="Alpha try", phone_number_id="alpha-sandbox", transport="sandbox"
    )
    message = _errors(client.post(ADD, _number(phone_number_id="alpha-sandbox", transport="sandbox")))
    assert message == "This number is already connected to Imaradesk. If it is yours, contact support."
    assert WhatsAppAccount.objects.filter(tenant=tenant_b.organization).count() == 1


@pytest.mark.parametrize("language", ["fr", "pt", "sw"])
def test_the_refusals_are_translated(tenant_b: TenantSetup, meta: FakeGraphApi, language: str) -> None:
    client = _signed_in(tenant_b)
    english = _errors(client.post(ADD, _number(access_token=BETA_OWN.token)))
    with override(language):
        assert gettext(english) != english
        assert gettext("This number is already connected to Imaradesk. If it is yours, contact support.") != (
            "This number is already connected to Imaradesk. If it is yours, contact support."
        )


# --- The WhatsApp Business account ID: its template events go to whoever names it -------------


def test_a_tenant_cannot_name_a_business_account_its_number_is_not_in(
    tenant_a: TenantSetup, tenant_b: TenantSetup, meta: FakeGraphApi
) -> None:
    # Template webhooks are routed by account ID: naming another business's account on one's
    # own number would deliver that business's template events (names, statuses, reasons) here.
    meta.phone_numbers[VICTIM_ID] = FakeNumber(
        VICTIM.token, VICTIM.display_phone_number, VICTIM.verified_name, "WABA-V"
    )
    meta.phone_numbers[BETA_OWN_ID] = FakeNumber(BETA_OWN.token, BETA_OWN.display_phone_number, "Beta Ltd", "WABA-B")
    client = _signed_in(tenant_b)

    squat = client.post(ADD, _number(phone_number_id=BETA_OWN_ID, access_token=BETA_OWN.token, waba_id="WABA-V"))
    assert "WhatsApp Business account" in _errors(squat)
    assert not WhatsAppAccount.objects.filter(phone_number_id=BETA_OWN_ID).exists()
    sandbox = client.post(
        ADD, _number(phone_number_id="beta-sandbox", transport="sandbox", access_token="", waba_id="WABA-V")
    )
    assert "WhatsApp Business account" in _errors(sandbox)

    own = client.post(ADD, _number(phone_number_id=BETA_OWN_ID, access_token=BETA_OWN.token, waba_id="WABA-B"))
    assert own.status_code == 302, _errors(own)
    assert WhatsAppAccount.objects.get(phone_number_id=BETA_OWN_ID).waba_id == "WABA-B"


# --- Numbers connected before the check --------------------------------------------------------


def test_numbers_connected_before_the_check_are_verified_by_a_command(
    tenant_a: TenantSetup, tenant_b: TenantSetup, meta: FakeGraphApi
) -> None:
    from io import StringIO

    from django.core.management import call_command

    meta.phone_numbers[VICTIM_ID] = FakeNumber(
        VICTIM.token, VICTIM.display_phone_number, VICTIM.verified_name, "WABA-V"
    )
    owned = WhatsAppAccount.objects.create(
        tenant=tenant_a.organization, name="Owned", phone_number_id=VICTIM_ID, access_token=VICTIM.token,
        waba_id="WABA-V",
    )  # fmt: skip
    squatted = WhatsAppAccount.objects.create(
        tenant=tenant_b.organization, name="Squatted", phone_number_id=BETA_OWN_ID, access_token=VICTIM.token,
        waba_id="WABA-V",
    )  # fmt: skip
    out, err = StringIO(), StringIO()
    call_command("whatsapp_numbers_verify", "--switch-off", stdout=out, stderr=err)

    owned.refresh_from_db()
    squatted.refresh_from_db()
    assert owned.verified_at is not None and owned.verified_name == VICTIM.verified_name and owned.is_active
    assert squatted.verified_at is None and not squatted.is_active
    assert "REFUSED (switched off)" in err.getvalue() and "Squatted" in err.getvalue()
    # Only the numbers never verified, unless --all: the confirmed one is not asked again.
    reads = len(meta.requests)
    call_command("whatsapp_numbers_verify", stdout=StringIO(), stderr=StringIO())
    assert [r.path for r in meta.requests[reads:] if VICTIM_ID in r.path] == []
