from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TicketsConfig(AppConfig):
    name = "apps.tickets"
    label = "tickets"
    verbose_name = _("Tickets and SLAs")

    def ready(self) -> None:
        from apps.accounts.roles import SUPPORT_MANAGER, grant_model_permissions
        from apps.conversations import hooks
        from apps.tickets import receivers

        hooks.on_handoff.append(receivers.handoff_received)
        hooks.on_message_analysed.append(receivers.message_analysed_received)
        hooks.on_agent_reply.append(receivers.agent_reply_received)
        hooks.on_assigned.append(receivers.conversation_assigned_received)
        hooks.on_resolved.append(receivers.conversation_resolved_received)
        hooks.keeps_resolved.append(receivers.csat_claims_inbound)
        # Agents work through the inbox and the API (capabilities), not the admin.
        grant_model_permissions(
            SUPPORT_MANAGER,
            "tickets.view_ticket",
            "tickets.add_ticket",
            "tickets.change_ticket",
            "tickets.view_ticketevent",
            "tickets.view_slapolicy",
            "tickets.add_slapolicy",
            "tickets.change_slapolicy",
            "tickets.view_businesscalendar",
            "tickets.add_businesscalendar",
            "tickets.change_businesscalendar",
            "tickets.view_businesshoursperiod",
            "tickets.add_businesshoursperiod",
            "tickets.change_businesshoursperiod",
            "tickets.delete_businesshoursperiod",
            "tickets.view_holiday",
            "tickets.add_holiday",
            "tickets.change_holiday",
            "tickets.delete_holiday",
            "tickets.view_escalationrule",
            "tickets.add_escalationrule",
            "tickets.change_escalationrule",
            "tickets.view_escalationrulefiring",
            "tickets.view_slaevent",
            "tickets.view_csatsurvey",
        )
