"""Tasks run in the schema of the tenant that sent them, through a real broker and worker."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from django.conf import settings

from apps.core.tenancy import schema_context, tenant_context
from apps.tenants.tasks import tenants_fan_out_task
from tests.celery_probe import probe_key, schema_probe
from tests.conftest import TenantSetup

pytestmark = pytest.mark.usefixtures("committed_db")


def test_task_sent_from_a_runs_in_schema_a(celery_worker: str, tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        from_a = schema_probe.delay()
    with tenant_context(tenant_b.organization):
        from_b = schema_probe.delay()

    result_a = from_a.get(timeout=30)
    result_b = from_b.get(timeout=30)
    assert result_a == {"schema": tenant_a.schema, "users": [tenant_a.admin_email]}
    assert result_b == {"schema": tenant_b.schema, "users": [tenant_b.admin_email]}


def test_task_sent_from_public_runs_in_public(celery_worker: str) -> None:
    with schema_context("public"):
        result = schema_probe.delay().get(timeout=30)
    assert result["schema"] == "public"
    assert isinstance(result["users"], list)
    assert "admin@alpha.test" not in result["users"]


def test_fan_out_reaches_every_served_tenant_once(
    celery_worker: str, tenant_a: TenantSetup, tenant_b: TenantSetup
) -> None:
    token = uuid.uuid4().hex
    with schema_context("public"):
        sent = tenants_fan_out_task("tests.schema_probe", [token])
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    deadline = time.monotonic() + 30
    while client.llen(probe_key(token)) < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # any extra (wrong) delivery would land by now
    schemas = sorted(client.lrange(probe_key(token), 0, -1))
    assert {tenant_a.schema, tenant_b.schema} <= set(schemas)
    assert len(schemas) == sent == len(set(schemas))
    assert "tenant_template" not in schemas
    assert "public" not in schemas
