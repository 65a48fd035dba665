"""Two back offices: the platform's on the public host, each business's on its own host."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.utils.translation import gettext_lazy as _

from apps.core.sign_in_limits import LimitedAuthenticationForm


class EmailAuthenticationForm(AdminAuthenticationForm, LimitedAuthenticationForm):
    """People sign in with their email address (it is their username); repeated failures are refused."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].label = _("Email")
        self.fields["username"].widget = forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})


class PlatformAdminSite(AdminSite):
    login_form = EmailAuthenticationForm
    site_header = _("Imaradesk platform")
    site_title = _("Imaradesk platform")
    index_title = _("Tenants and platform settings")


class TenantAdminSite(AdminSite):
    login_form = EmailAuthenticationForm
    site_header = _("Imaradesk")
    site_title = _("Imaradesk back office")
    index_title = _("Back office")


platform_admin_site = PlatformAdminSite(name="platform_admin")
tenant_admin_site = TenantAdminSite(name="admin")
