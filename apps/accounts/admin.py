from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Permission
from django.contrib.auth.password_validation import validate_password
from django.db.models import ManyToManyField, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import AgentProfile, Role, Team, User
from apps.accounts.roles import ADMIN, ROLE_LABELS, ROLE_NAMES
from apps.accounts.selectors import (
    role_list_grantable_by,
    role_permission_names,
    user_is_last_admin,
    user_list_admins_active,
    user_may_manage,
)
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

    # The person adding: set by the admin (`get_form`), so only roles they could hold are offered.
    actor: User | None = None

    class Meta:
        model = User
        fields = ["email", "first_name", "last_name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True
        if self.actor is not None:
            grantable = set(role_list_grantable_by(actor=self.actor).values_list("name", flat=True))
            role = self.fields["role"]
            assert isinstance(role, forms.ChoiceField)  # noqa: S101 - declared above
            role.choices = [(name, ROLE_LABELS[name]) for name in ROLE_NAMES if name in grantable]

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


LAST_ADMIN_MESSAGE = _("This is the organization's last active admin: make someone else an admin first.")


class UserAccessChangeForm(UserChangeForm[User]):
    """The change form, refusing to leave the organization (or the platform) without an admin."""

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        user = self.instance

        def after(name: str) -> Any:
            return cleaned.get(name) if name in self.fields else getattr(user, name)

        groups = list(cleaned.get("groups") or []) if "groups" in self.fields else list(user.groups.all())
        admin_after = (
            bool(after("is_active"))
            and bool(after("is_staff"))
            and (bool(after("is_superuser")) or any(group.name == ADMIN for group in groups))
        )
        if not admin_after and user.pk is not None and user_is_last_admin(user=user):
            raise forms.ValidationError(LAST_ADMIN_MESSAGE, code="last_admin")
        return cleaned


class GuardedUserAdmin(UserAdmin[User]):
    """Nobody gives more than they hold: only a superuser grants superuser or per-user permissions,
    roles are offered only if the editor holds all their permissions, and nobody edits (or sets
    the password of) someone holding more than themselves. The last admin is never removed."""

    form = UserAccessChangeForm

    def _actor(self, request: HttpRequest) -> User:
        assert isinstance(request.user, User)  # noqa: S101 - the admin site admits signed-in staff only
        return request.user

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self._actor(request).is_superuser:
            return fieldsets
        hidden = {"is_superuser", "user_permissions"}
        return [
            (name, {**options, "fields": tuple(f for f in options["fields"] if f not in hidden)})
            for name, options in fieldsets
        ]

    def formfield_for_manytomany(
        self, db_field: ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.ModelMultipleChoiceField[Any] | None:
        if db_field.name == "groups":
            kwargs["queryset"] = role_list_grantable_by(actor=self._actor(request))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or user_may_manage(actor=self._actor(request), target=obj))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        if obj is None or not allowed:
            return allowed
        return user_may_manage(actor=self._actor(request), target=obj) and not user_is_last_admin(user=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        actor = self._actor(request)
        if any(not user_may_manage(actor=actor, target=user) for user in queryset):
            self.message_user(request, _("You cannot delete someone who holds more than you."), messages.ERROR)
            return
        if not user_list_admins_active().exclude(pk__in=queryset.values("pk")).exists():
            self.message_user(request, LAST_ADMIN_MESSAGE, messages.ERROR)
            return
        super().delete_queryset(request, queryset)


class AgentProfileInline(admin.StackedInline[AgentProfile, User]):
    model = AgentProfile
    can_delete = False
    fields = ["status", "max_concurrent_chats", "languages", "last_seen_at"]
    readonly_fields = ["last_seen_at"]


class TenantUserAdmin(GuardedUserAdmin):
    """A business's team members, each with one or more roles."""

    add_form = UserAddForm
    add_fieldsets = ((None, {"fields": ("email", "first_name", "last_name", "role", "password1", "password2")}),)
    list_display = ["email", "first_name", "last_name", "role_names", "is_active", "last_login"]
    list_filter = ["is_active", "groups", "teams"]
    search_fields = ["email", "username", "first_name", "last_name"]
    ordering = ["email"]
    inlines = [AgentProfileInline]
    filter_horizontal = ["groups"]

    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Personal info"), {"fields": ("first_name", "last_name", "email")}),
        (_("Role and access"), {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            # The add form offers only the roles the person adding could give.
            return type(form.__name__, (form,), {"actor": self._actor(request)})
        return form

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
    """Roles; someone who is not a superuser edits only roles within their own permissions, and
    can add to a role only permissions they hold."""

    list_display = ["name", "permission_count"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        user = request.user
        if not allowed or obj is None or user.is_superuser:
            return allowed
        return role_permission_names(role=obj) <= user.get_all_permissions()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request, obj) and super().has_delete_permission(request, obj)

    def formfield_for_manytomany(
        self, db_field: ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.ModelMultipleChoiceField[Any] | None:
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        user = request.user
        if db_field.name == "permissions" and field is not None and not user.is_superuser:
            held = user.get_all_permissions()
            field.queryset = Permission.objects.select_related("content_type").filter(
                pk__in=[
                    permission.pk
                    for permission in Permission.objects.select_related("content_type")
                    if f"{permission.content_type.app_label}.{permission.codename}" in held
                ]
            )
        return field

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


class PlatformUserAdmin(GuardedUserAdmin):
    """Platform admins. They are deactivated, never deleted: the public schema has none of the
    tenant tables that refer to users, so Django's cascade could not run there."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


platform_admin_site.register(User, PlatformUserAdmin)
