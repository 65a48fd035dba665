"""How long creating a tenant takes: cloning the template schema vs running every migration.

    python -m benchmarks.tenant_create [--runs N]

Uses the configured database (`make bench` provides one), creates tenants named
`bench-*` and drops them afterwards. Prints per-tenant timings for both paths and
the ratio, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imaradesk.settings.base")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
django.setup()

from django_tenants.models import TenantMixin  # noqa: E402

from apps.accounts.roles import ADMIN  # noqa: E402
from apps.accounts.services import roles_sync, user_create  # noqa: E402
from apps.core.tenancy import tenant_context  # noqa: E402
from apps.tenants.models import Domain, Organization  # noqa: E402
from apps.tenants.services import organization_create, schema_name_for_slug  # noqa: E402
from benchmarks._setup import database_ready  # noqa: E402

_schema_seconds: list[float] = []


def _timed_create_schema(self: Organization, *args: Any, **kwargs: Any) -> Any:
    started = time.perf_counter()
    try:
        return _product_create_schema(self, *args, **kwargs)
    finally:
        _schema_seconds.append(time.perf_counter() - started)


_product_create_schema = Organization.create_schema
Organization.create_schema = _timed_create_schema  # type: ignore[method-assign]


def _create_by_cloning(slug: str) -> tuple[float, float]:
    """The product's path: organization_create clones the template schema."""
    started = time.perf_counter()
    organization_create(slug=slug, name=slug, domain=f"{slug}.bench.localhost", admin_email=f"admin@{slug}.test")
    return time.perf_counter() - started, _schema_seconds.pop()


def _create_by_migrating(slug: str) -> tuple[float, float]:
    """The baseline: the same steps, with django-tenants running every migration in the new schema."""
    started = time.perf_counter()
    org = Organization(schema_name=schema_name_for_slug(slug), name=slug, slug=slug)
    org.auto_create_schema = False
    org.save()
    schema_started = time.perf_counter()
    TenantMixin.create_schema(org, check_if_exists=True, verbosity=0)
    schema_seconds = time.perf_counter() - schema_started
    Domain.objects.create(domain=f"{slug}.bench.localhost", tenant=org, is_primary=True)
    with tenant_context(org):
        roles_sync()
        user_create(email=f"admin@{slug}.test", password="bench-password-123", role=ADMIN, is_superuser=True)
    return time.perf_counter() - started, schema_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    database_ready()
    run_id = uuid.uuid4().hex[:6]
    slugs: list[str] = []
    timings: dict[str, list[tuple[float, float]]] = {"clone": [], "migrate": []}
    try:
        for i in range(args.runs):
            for mode, create in (("migrate", _create_by_migrating), ("clone", _create_by_cloning)):
                slug = f"bench-{run_id}-{mode[0]}{i}"
                slugs.append(slug)
                timings[mode].append(create(slug))
    finally:
        for org in Organization.objects.filter(slug__in=slugs):
            org.delete(force_drop=True)

    print(f"tenant creation, {args.runs} tenants per path")
    print("  (whole = schema + domain + roles + first admin, whose password hash alone is ~0.25 s)")
    medians: dict[tuple[str, int], float] = {}
    for mode in ("migrate", "clone"):
        for part, label in ((0, "whole"), (1, "schema")):
            values = [pair[part] for pair in timings[mode]]
            medians[mode, part] = statistics.median(values)
            print(
                f"  {mode:8s} {label:7s} median {medians[mode, part] * 1000:8.1f} ms   min {min(values) * 1000:8.1f} ms"
            )
    for part, label in ((0, "whole"), (1, "schema")):
        ratio = medians["migrate", part] / medians["clone", part]
        print(f"  {label:7s}: clone is {ratio:.1f}x faster than running the migrations (baseline: migrate)")


if __name__ == "__main__":
    main()
