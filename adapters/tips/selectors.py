"""Reads of the TIPS message log for pages and the API (not scoped by organization: the tax bureau's
exchange with TIPS is one whole; the roles that see it see all of it)."""
from __future__ import annotations

from django.db.models import Q, QuerySet

from adapters.tips.models import TipsMessage


def message_list(*, msg_no: str = "", direction: str = "", key: str = "", msg_id: str = "",
                 result: str = "") -> QuerySet[TipsMessage]:
    """Newest first, without bodies. `key` matches the start of the business key; `msg_id` matches MsgID or MsgRef."""
    messages = TipsMessage.objects.defer("body")
    if msg_no:
        messages = messages.filter(msg_no=msg_no)
    if direction:
        messages = messages.filter(direction=direction)
    if key:
        messages = messages.filter(key__startswith=key)
    if msg_id:
        messages = messages.filter(Q(msg_id=msg_id) | Q(msg_ref=msg_id))
    if result:
        messages = messages.filter(result=result)
    return messages


def message_detail(*, message_id: int) -> TipsMessage:
    """One message with its body. Raises TipsMessage.DoesNotExist."""
    return TipsMessage.objects.get(pk=message_id)


def related_to(*, message: TipsMessage) -> QuerySet[TipsMessage]:
    """The other messages of the same exchange (request, attempts, reply), oldest first, without bodies."""
    ids = {v for v in (message.msg_id, message.msg_ref) if v}
    if not ids:
        return TipsMessage.objects.none()
    return (TipsMessage.objects.defer("body").filter(Q(msg_id__in=ids) | Q(msg_ref__in=ids))
            .exclude(pk=message.pk).order_by("created_at", "id"))
