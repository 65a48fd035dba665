from __future__ import annotations

from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError, PermissionDeniedError


class ConversationNotFound(NotFoundError):
    code = "conversation_not_found"


class ConversationTransitionInvalid(ConflictError):
    code = "conversation_transition_invalid"


class ConversationActionDenied(PermissionDeniedError):
    code = "conversation_action_denied"


class AgentUnavailable(ApplicationError):
    code = "agent_unavailable"


class ContactOptedOut(ConflictError):
    code = "contact_opted_out"


class TemplateNotApproved(ConflictError):
    code = "template_not_approved"
