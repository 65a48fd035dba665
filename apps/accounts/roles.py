"""The four roles of the product spec, and the permissions each one holds.

Capabilities are custom permissions on the Role model. Model permissions of apps
added later are granted by those apps through `grant_model_permissions` in their
`AppConfig.ready()`, so this lower layer never imports them.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

ADMIN = "Admin"
SUPPORT_MANAGER = "Support Manager"
AGENT = "Agent"
KNOWLEDGE_EDITOR = "Knowledge Editor"
ROLE_NAMES = (ADMIN, SUPPORT_MANAGER, AGENT, KNOWLEDGE_EDITOR)

CAPABILITIES: dict[str, str] = {
    "manage_team": "Can manage the team",
    "manage_billing": "Can manage billing",
    "manage_knowledge_base": "Can manage the knowledge base",
    "manage_ai_settings": "Can manage AI settings",
    "manage_integrations": "Can manage integrations",
    "view_all_conversations": "Can view all conversations",
    "view_analytics": "Can view analytics",
    "manage_agents": "Can manage agents",
    "assign_conversations": "Can assign conversations",
    "configure_escalations": "Can configure escalations",
    "review_ai_responses": "Can review AI responses",
    "view_assigned_conversations": "Can view assigned conversations",
    "respond_to_conversations": "Can respond to conversations",
    "view_customer_history": "Can view customer history",
    "resolve_conversations": "Can mark conversations resolved",
    "manage_articles": "Can manage knowledge base articles",
}

_AGENT_CAPABILITIES = [
    "view_assigned_conversations",
    "respond_to_conversations",
    "view_customer_history",
    "resolve_conversations",
]

ROLE_CAPABILITIES: dict[str, list[str]] = {
    ADMIN: list(CAPABILITIES),
    SUPPORT_MANAGER: [
        "manage_agents",
        "view_all_conversations",
        "assign_conversations",
        "configure_escalations",
        "view_analytics",
        "review_ai_responses",
        *_AGENT_CAPABILITIES,
    ],
    AGENT: list(_AGENT_CAPABILITIES),
    KNOWLEDGE_EDITOR: ["manage_articles"],
}

# "app_label.codename" model permissions per role, beyond capabilities. Admin holds all.
ROLE_MODEL_PERMISSIONS: dict[str, set[str]] = {
    SUPPORT_MANAGER: {
        "accounts.view_user",
        "accounts.view_team",
        "accounts.change_team",
        "accounts.view_agentprofile",
        "accounts.change_agentprofile",
    },
    AGENT: set(),
    KNOWLEDGE_EDITOR: set(),
}

# Roles that work in the Django admin back office; agents work in the inbox.
STAFF_ROLES = {ADMIN, SUPPORT_MANAGER, KNOWLEDGE_EDITOR}

ROLE_LABELS = {
    ADMIN: _("Admin"),
    SUPPORT_MANAGER: _("Support Manager"),
    AGENT: _("Agent"),
    KNOWLEDGE_EDITOR: _("Knowledge Editor"),
}


def grant_model_permissions(role: str, *permissions: str) -> None:
    """Let a higher app give a role permissions on its models (call from AppConfig.ready)."""
    if role == ADMIN:
        return
    ROLE_MODEL_PERMISSIONS[role].update(permissions)
