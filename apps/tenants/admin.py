from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.core.admin_sites import platform_admin_site
from apps.core.exceptions import ApplicationError
from apps.tenants.models import Domain, Organization
from apps.tenants.selectors import organization_list_served
from apps.tenants.services import organization_create, organization_validate


class OrganizationCreateForm(forms.ModelForm[Organization]):
    domain = forms.CharField(label=_("Domain"), help_text=_("Host name the business uses, e.g. acme.example.com"))
    admin_email = forms.EmailField(label=_("First admin's email"), required=False)

    class Meta:
        model = Organization
        fields = ["name", "slug", "plan", "time_zone", "default_language"]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if cleaned.get("slug") and cleaned.get("domain"):
            try:
                organization_validate(slug=cleaned["slug"].lower(), domain=cleaned["domain"].strip().lower())
            except ApplicationError as exc:
                raise forms.ValidationError(exc.message, code=exc.code) from exc
        return cleaned

    def validate_unique(self) -> None:
        # Uniqueness is the service's to check (slug, schema and domain together).
        return None


class DomainInline(admin.TabularInline[Domain, Organization]):
    model = Domain
    extra = 0
    fields = ["domain", "is_primary"]


@admin.register(Organization, site=platform_admin_site)
class OrganizationAdmin(admin.ModelAdmin[Organization]):
    list_display = ["name", "slug", "schema_name", "plan", "time_zone", "default_language", "created"]
    list_filter = ["plan"]
    search_fields = ["name", "slug", "domains__domain"]
    readonly_fields = ["schema_name", "created"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        return organization_list_served().prefetch_related("domains")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = OrganizationCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "slug", "domain", "plan", "time_zone", "default_language", "admin_email"]
        return ["name", "slug", "schema_name", "plan", "time_zone", "default_language", "created"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["slug", "schema_name", "created"] if obj is not None else []

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return [DomainInline] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        created = organization_create(
            slug=data["slug"],
            name=data["name"],
            domain=data["domain"],
            plan=data["plan"],
            time_zone=data["time_zone"],
            default_language=data["default_language"],
            admin_email=data.get("admin_email") or None,
        )
        obj.pk = created.organization.pk
        obj.schema_name = created.organization.schema_name
        if created.admin is not None:
            self.message_user(
                request,
                _("Organization created. First admin: %(email)s, password: %(password)s (shown once).")
                % {"email": created.admin.email, "password": created.admin_password},
                level=messages.WARNING,
            )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting drops a schema with all of a business's data: done from the CLI on purpose.
        return False


@admin.register(Domain, site=platform_admin_site)
class DomainAdmin(admin.ModelAdmin[Domain]):
    list_display = ["domain", "tenant", "is_primary"]
    search_fields = ["domain", "tenant__name"]
    list_select_related = ["tenant"]
