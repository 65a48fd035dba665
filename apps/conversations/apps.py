from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConversationsConfig(AppConfig):
    name = "apps.conversations"
    label = "conversations"
    verbose_name = _("Conversations")

    def ready(self) -> None:
        from apps.conversations.selectors import outbox_message_routing
        from apps.conversations.services import inbound_handle
        from apps.whatsapp.handlers import inbound_handler_register, status_router_register

        inbound_handler_register(inbound_handle)
        status_router_register(outbox_message_routing)
