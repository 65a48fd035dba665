"""Core plumbing: settings helpers, the API error shape, logging context, channel group names."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.core.env import env_bool, env_int, env_list, env_secret
from apps.core.realtime import tenant_group, user_group
from apps.core.tenancy import schema_context
from tests.conftest import PASSWORD, TenantSetup

ROOT = Path(__file__).resolve().parent.parent


def test_env_helpers_parse_and_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env_bool("X_BOOL", False) is True
    assert env_int("X_INT", 1) == 42
    assert env_list("X_LIST", []) == ["a", "b", "c"]
    monkeypatch.setenv("X_BOOL", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL"):
        env_bool("X_BOOL", False)
    monkeypatch.setenv("X_INT", "many")
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        env_int("X_INT", 1)


def test_env_secret_refuses_production_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("X_SECRET", raising=False)
    assert env_secret("X_SECRET", debug=True, dev_default="dev") == "dev"
    with pytest.raises(ImproperlyConfigured, match="X_SECRET must be set"):
        env_secret("X_SECRET", debug=False, dev_default="dev")
    monkeypatch.setenv("X_SECRET", "s3cret")
    assert env_secret("X_SECRET", debug=False, dev_default="dev") == "s3cret"


def test_production_settings_refuse_to_start_without_secret_key() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    env.update({"DJANGO_DEBUG": "0", "DJANGO_SETTINGS_MODULE": "imaradesk.settings.base"})
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set when DEBUG is off" in result.stderr


@pytest.mark.django_db
def test_api_errors_share_one_shape(tenant_a: TenantSetup) -> None:
    client = tenant_a.client()
    unauthenticated = client.get("/api/v1/me/")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json() == {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided.",
        "extra": {},
    }

    invalid = client.post("/api/v1/auth/token/", {"email": tenant_a.admin_email}, content_type="application/json")
    assert invalid.status_code == 400
    body = invalid.json()
    assert body["code"] == "invalid"
    assert body["extra"]["fields"]["password"] == ["This field is required."]

    wrong = client.post(
        "/api/v1/auth/token/",
        {"email": tenant_a.admin_email, "password": PASSWORD + "x"},
        content_type="application/json",
    )
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "credentials_invalid"

    missing = client.get("/api/v1/nothing-here/")
    assert missing.status_code == 404


def test_log_records_carry_the_tenant(tenant_a: TenantSetup, caplog: pytest.LogCaptureFixture) -> None:
    from pythonjsonlogger.json import JsonFormatter

    from apps.core.logging import TenantContextFilter

    logger = logging.getLogger("imaradesk.test")
    handler = logging.StreamHandler()
    handler.addFilter(TenantContextFilter())
    formatter = JsonFormatter("%(levelname)s %(tenant)s %(message)s")
    records: list[str] = []
    handler.emit = lambda record: records.append(formatter.format(record))  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        with schema_context(tenant_a.schema):
            logger.warning("inside the tenant")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in records)
    assert inside["tenant"] == tenant_a.schema
    assert inside["message"] == "inside the tenant"
    assert outside["tenant"] == "public"


def test_group_names_are_prefixed_and_validated() -> None:
    assert tenant_group("alpha", "events") == "tenant.alpha.events"
    assert user_group("alpha", 3) != user_group("beta", 3)
    for bad in ("", "al pha", "a.b", "../x"):
        with pytest.raises(ValueError):
            tenant_group(bad, "events")
    with pytest.raises(ValueError):
        tenant_group("alpha", "ev.ents")


def test_the_schema_documents_pages_and_the_error_answers() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    for path, page in (("/api/v1/conversations/", "ConversationPage"), ("/api/v1/tickets/", "TicketPage")):
        listing = paths[path]["get"]
        assert listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(page)
        assert {"limit", "offset"} <= {parameter["name"] for parameter in listing["parameters"]}
    assert set(schema["components"]["schemas"]["Error"]["required"]) == {"code", "message", "extra"}
    resolve = paths["/api/v1/conversations/{conversation_id}/resolve/"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409"} <= set(resolve)
    assert set(paths["/api/v1/me/"]["get"]["responses"]) == {"200", "401", "403"}
    assert "401" not in paths["/api/v1/auth/token/"]["post"]["responses"]
    category = schema["components"]["schemas"]["DocumentOutput"]["properties"]["category"]
    assert category.get("nullable") is True
