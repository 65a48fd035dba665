from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FlowsConfig(AppConfig):
    name = "apps.flows"
    label = "flows"
    verbose_name = _("Flows")

    def ready(self) -> None:
        from apps.accounts.roles import SUPPORT_MANAGER, grant_model_permissions
        from apps.conversations import hooks
        from apps.flows.services import flow_claims_message, flow_handle_message, flow_runs_end_on_handoff

        # The built-in knowledge reply skips a message a flow claims, whichever handler runs first.
        hooks.automation_claim_register(flow_claims_message)
        hooks.after_analysis_register(flow_handle_message)
        if flow_runs_end_on_handoff not in hooks.on_handoff:
            hooks.on_handoff.append(flow_runs_end_on_handoff)

        # Managers build and publish flows and read their runs; the Admin role has everything.
        grant_model_permissions(
            SUPPORT_MANAGER,
            *(f"flows.{action}_flow" for action in ("add", "change", "view")),
            "flows.view_flowversion",
            "flows.view_flowrun",
            "flows.view_flowrunstep",
        )
