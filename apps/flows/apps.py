from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FlowsConfig(AppConfig):
    name = "apps.flows"
    label = "flows"
    verbose_name = _("Flows")

    def ready(self) -> None:
        from apps.conversations.hooks import after_analysis_register, automation_claim_register
        from apps.flows.services import flow_claims_message, flow_handle_message

        # Flows answer before the built-in knowledge reply, which skips a message a flow claims.
        automation_claim_register(flow_claims_message)
        after_analysis_register(flow_handle_message)
