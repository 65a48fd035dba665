from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.views import LoginView
from django.utils.translation import gettext_lazy as _

from apps.core.sign_in_limits import LimitedAuthenticationForm


class EmailSignInForm(LimitedAuthenticationForm):
    """Everyone of the business signs in here with their email, agents included (not only staff)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].label = _("Email")
        self.fields["username"].widget = forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})


class SignInView(LoginView):
    form_class = EmailSignInForm
    template_name = "accounts/sign_in.html"
    redirect_authenticated_user = True
    next_page = "inbox"
