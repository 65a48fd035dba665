from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.password_validation import validate_password
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import AgentProfile, Role, Team, User
from apps.accounts.roles import ROLE_LABELS, ROLE_NAMES
from apps.accounts.services import user_create
from apps.core.admin_sites import platform_admin_site, tenant_admin_site


class UserAddForm(forms.ModelForm[User]):
    """Add a team member: email, name, one role; the password is optional (set it later)."""

    role = forms.ChoiceField(label=_("Role"), choices=[(name, ROLE_LABELS[name]) for name in ROLE_NAMES])
    password1 = forms.CharField(
        label=_("Password"),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        required=False,
        help_text=_("Leave empty to create the account without a password; set one later."),
    )
    password2 = forms.CharField(
        label=_("Password confirmation"),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        required=False,
    )

    class Meta:
        model = User
        fields = ["email", "first_name", "last_name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"]).strip()
        if User.objects.filter(email__iexact=email).exists() or User.objects.filter(username__iexact=email).exists():
            raise forms.ValidationError(_("A user with this email already exists."), code="user_email_taken")
        return email

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        password1, password2 = cleaned.get("password1"), cleaned.get("password2")
        if password1 or password2:
            if password1 != password2:
                self.add_error("password2", forms.ValidationError(_("The two passwords do not match.")))
            else:
                try:
                    validate_password(str(password1), User(email=cleaned.get("email", "")))
                except forms.ValidationError as exc:
                    self.add_error("password1", exc)
        return cleaned


class AgentProfileInline(admin.StackedInline[AgentProfile, User]):
    model = AgentProfile
    can_delete = False
    fields = ["status", "max_concurrent_chats", "languages", "last_seen_at"]
    readonly_fields = ["last_seen_at"]


class TenantUserAdmin(UserAdmin[User]):
    """A business's team members. Only a superuser may grant superuser or per-user permissions."""

    add_form = UserAddForm
    add_fieldsets = ((None, {"fields": ("email", "first_name", "last_name", "role", "password1", "password2")}),)
    list_display = ["email", "first_name", "last_name", "role_names", "is_active", "last_login"]
    list_filter = ["is_active", "groups", "teams"]
    search_fields = ["email", "username", "first_name", "last_name"]
    ordering = ["email"]
    inlines = [AgentProfileInline]
    filter_horizontal = ["groups"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return self.add_fieldsets
        access: tuple[str, ...] = ("is_active", "is_staff", "groups")
        if request.user.is_superuser:
            access = ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")
        return [
            (None, {"fields": ("username", "password")}),
            (_("Personal info"), {"fields": ("first_name", "last_name", "email")}),
            (_("Role and access"), {"fields": access}),
            (_("Important dates"), {"fields": ("last_login", "date_joined")}),
        ]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description=_("Roles"))
    def role_names(self, obj: User) -> str:
        return ", ".join(sorted(group.name for group in obj.groups.all()))

    def get_inline_instances(self, request: HttpRequest, obj: Any = None) -> Any:
        return super().get_inline_instances(request, obj) if obj is not None else []

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        created = user_create(
            email=data["email"],
            password=data.get("password1") or None,
            role=data["role"],
            first_name=data.get("first_name", ""),
            last_name=data.get("last_name", ""),
        )
        obj.pk = created.pk
        obj.username = created.username
        obj._state.adding = False


class RoleAdmin(GroupAdmin):
    list_display = ["name", "permission_count"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("permissions")

    @admin.display(description=_("Permissions"))
    def permission_count(self, obj: Role) -> int:
        return len(obj.permissions.all())


class TeamForm(forms.ModelForm[Team]):
    class Meta:
        model = Team
        fields = ["name", "members"]


class TeamAdmin(admin.ModelAdmin[Team]):
    form = TeamForm
    list_display = ["name", "member_count"]
    search_fields = ["name"]
    filter_horizontal = ["members"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("members")

    @admin.display(description=_("Members"))
    def member_count(self, obj: Team) -> int:
        return len(obj.members.all())


class AgentProfileAdmin(admin.ModelAdmin[AgentProfile]):
    list_display = ["user", "status", "max_concurrent_chats", "languages", "last_seen_at"]
    list_filter = ["status"]
    list_select_related = ["user"]
    search_fields = ["user__email"]
    readonly_fields = ["user", "last_seen_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # every user gets a profile when created


tenant_admin_site.register(User, TenantUserAdmin)
tenant_admin_site.register(Role, RoleAdmin)
tenant_admin_site.register(Team, TeamAdmin)
tenant_admin_site.register(AgentProfile, AgentProfileAdmin)


class PlatformUserAdmin(UserAdmin[User]):
    """Platform admins. They are deactivated, never deleted: the public schema has none of the
    tenant tables that refer to users, so Django's cascade could not run there."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


platform_admin_site.register(User, PlatformUserAdmin)
