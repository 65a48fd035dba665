from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = _("Team and roles")

    def ready(self) -> None:
        from apps.accounts import signals  # noqa: F401
