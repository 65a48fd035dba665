"""Creating tenants: fast (cloned from a migrated template schema) and all-or-nothing."""

from __future__ import annotations

import logging
import re
import secrets
import zoneinfo
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.accounts.roles import ADMIN
from apps.accounts.services import roles_sync, user_create
from apps.core.tenancy import schema_context, schema_exists, tenant_context, use_public_schema
from apps.tenants.exceptions import (
    DomainInvalid,
    DomainTaken,
    OrganizationSettingInvalid,
    OrganizationSlugInvalid,
    OrganizationSlugTaken,
)
from apps.tenants.models import Domain, Organization
from apps.tenants.schemas import TEMPLATE_SCHEMA

logger = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,48}[a-z0-9]$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
RESERVED_SLUGS = {
    "public",
    "platform",
    "www",
    "admin",
    "api",
    "static",
    "media",
    "tenant-template",
    "information-schema",
}


@dataclass(frozen=True)
class OrganizationCreated:
    organization: Organization
    domain: Domain
    admin: User | None
    admin_password: str | None


def schema_name_for_slug(slug: str) -> str:
    return slug.replace("-", "_")


def platform_ensure(*, public_domain: str) -> Organization:
    """Create the public tenant (the platform's own host) if it is missing."""
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        public, _created = Organization.objects.get_or_create(
            schema_name=settings.PUBLIC_SCHEMA_NAME,
            defaults={"name": "Imaradesk platform", "slug": "platform"},
        )
        Domain.objects.get_or_create(domain=public_domain, defaults={"tenant": public, "is_primary": True})
    return public


def template_ensure() -> Organization:
    """Create the template schema new tenants are cloned from; migrate_schemas keeps it current."""
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        template = Organization.objects.filter(schema_name=TEMPLATE_SCHEMA).first()
        if template is not None and schema_exists(template.schema_name):
            return template
        if template is not None:  # a row without its schema: rebuild both
            template.delete(force_drop=True)
        # The template itself is built by running every migration (Organization.create_schema).
        template = Organization(
            schema_name=TEMPLATE_SCHEMA,
            name="Tenant template",
            slug="tenant-template",
            is_template=True,
        )
        template.save(verbosity=0)
    with tenant_context(template):
        roles_sync()
    return template


def organization_settings_validate(*, plan: str, time_zone: str, default_language: str) -> None:
    if plan not in Organization.Plan.values:
        raise OrganizationSettingInvalid(
            _("Unknown plan %(plan)s.") % {"plan": plan}, extra={"plan": plan, "plans": Organization.Plan.values}
        )
    if time_zone not in zoneinfo.available_timezones():
        raise OrganizationSettingInvalid(
            _("Unknown time zone %(tz)s (use a name such as Africa/Nairobi).") % {"tz": time_zone},
            extra={"time_zone": time_zone},
        )
    languages = [code for code, _name in settings.LANGUAGES]
    if default_language not in languages:
        raise OrganizationSettingInvalid(
            _("Unsupported language %(language)s.") % {"language": default_language},
            extra={"default_language": default_language, "languages": languages},
        )


def organization_validate(*, slug: str, domain: str) -> None:
    """Refuse a slug or domain that is malformed, reserved or already used."""
    if not SLUG_RE.match(slug) or slug in RESERVED_SLUGS or slug.startswith("pg-"):
        raise OrganizationSlugInvalid(
            _("The slug must be 3-50 lowercase letters, digits or hyphens, start with a letter, and not be reserved."),
            extra={"slug": slug},
        )
    if not DOMAIN_RE.match(domain):
        raise DomainInvalid(_("%(domain)s is not a valid host name.") % {"domain": domain}, extra={"domain": domain})
    if Organization.objects.filter(slug=slug).exists() or schema_exists(schema_name_for_slug(slug)):
        raise OrganizationSlugTaken(_("An organization with this slug already exists."), extra={"slug": slug})
    if Domain.objects.filter(domain=domain).exists():
        raise DomainTaken(_("This domain is already used by another organization."), extra={"domain": domain})


def organization_create(
    *,
    slug: str,
    name: str,
    domain: str,
    plan: str = Organization.Plan.FREE,
    time_zone: str = "UTC",
    default_language: str = "en",
    admin_email: str | None = None,
    admin_password: str | None = None,
) -> OrganizationCreated:
    """Create a business: its schema (cloned), its primary domain, its roles and its first admin.

    Schema creation cannot share one transaction with the rows, so on any failure the
    half-made tenant is removed (schema included) before the error propagates.
    """
    slug = slug.strip().lower()
    domain = domain.strip().lower()
    organization_settings_validate(plan=plan, time_zone=time_zone, default_language=default_language)
    with schema_context(settings.PUBLIC_SCHEMA_NAME):
        organization_validate(slug=slug, domain=domain)
        template_ensure()
        organization = Organization(
            schema_name=schema_name_for_slug(slug),
            name=name,
            slug=slug,
            plan=plan,
            time_zone=time_zone,
            default_language=default_language,
        )
        try:
            organization.save(verbosity=0)
            domain_row = Domain.objects.create(domain=domain, tenant=organization, is_primary=True)
            admin: User | None = None
            password: str | None = None
            with tenant_context(organization):
                roles_sync()
                if admin_email:
                    password = admin_password or secrets.token_urlsafe(12)
                    admin = user_create(email=admin_email, password=password, role=ADMIN, is_superuser=True)
        except BaseException:
            logger.exception("Creating organization %s failed; removing what was made", slug)
            use_public_schema()
            if organization.pk is not None:
                organization.delete(force_drop=True)
            raise
    logger.info("Created organization %s (schema %s) at %s", slug, organization.schema_name, domain)
    return OrganizationCreated(organization=organization, domain=domain_row, admin=admin, admin_password=password)
