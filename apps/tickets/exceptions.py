from __future__ import annotations

from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError, PermissionDeniedError


class TicketNotFound(NotFoundError):
    code = "ticket_not_found"


class TicketTransitionInvalid(ConflictError):
    code = "ticket_transition_invalid"


class TicketMergeInvalid(ConflictError):
    code = "ticket_merge_invalid"


class TicketActionDenied(PermissionDeniedError):
    code = "ticket_action_denied"


class TicketInvalid(ApplicationError):
    code = "ticket_invalid"
