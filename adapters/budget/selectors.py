"""Reads of the message log for pages and the API.

Messages with the budget system are the finance bureau's business as a whole (one division's
budget system), so they are not scoped by organization: the roles that see them see all of them.
"""
from __future__ import annotations

from django.db.models import QuerySet

from adapters.budget.models import BudgetMessage

_BODIES = ("request_body", "response_body")


def message_list(*, operation: str = "", key: str = "", outcome: str = "") -> QuerySet[BudgetMessage]:
    """Newest first, without the bodies. `key` matches the start of a voucher or report number."""
    messages = BudgetMessage.objects.defer(*_BODIES)
    if operation:
        messages = messages.filter(operation=operation)
    if key:
        messages = messages.filter(key__startswith=key)
    if outcome:
        messages = messages.filter(outcome=outcome)
    return messages


def message_detail(*, message_id: int) -> BudgetMessage:
    """One message with its bodies. Raises BudgetMessage.DoesNotExist."""
    return BudgetMessage.objects.get(pk=message_id)


def attempts_of(*, message: BudgetMessage) -> QuerySet[BudgetMessage]:
    """Every logged attempt of the same operation and key, oldest first, without bodies."""
    return (BudgetMessage.objects.defer(*_BODIES).filter(operation=message.operation, key=message.key)
            .order_by("created_at", "id"))
