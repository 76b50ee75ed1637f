"""Template filters for money and personal data: pages format through `treasury.money` and
`treasury.identifiers`, never on their own.

    {% load treasury_format %}  {{ t.amount_fen|yuan }}  {{ t.amount_fen|capitals }}  {{ w.wallet_id|mask_wallet }}
"""
from datetime import datetime

from django import template

from treasury import identifiers, money

register = template.Library()


@register.filter
def yuan(fen):
    if fen is None or fen == "":
        return ""
    return money.format_yuan(int(fen))


@register.filter
def capitals(fen):
    if fen is None or fen == "":
        return ""
    return money.fen_to_capitals(int(fen))


@register.filter
def mask_wallet(wallet_id):
    return identifiers.mask_wallet_id(wallet_id)


@register.filter
def mask_name(name):
    return identifiers.mask_name(name)


@register.filter
def mask_resident_id(number):
    return identifiers.mask_resident_id(number)


@register.filter
def state_label(state):
    """A transfer state in the page's language."""
    from treasury.access.labels import TRANSFER_STATE_LABELS

    return TRANSFER_STATE_LABELS.get(str(state), state)


@register.filter
def role_label(role):
    from treasury.access.roles import ROLE_LABELS

    return ROLE_LABELS.get(str(role), role)


@register.filter
def iso_datetime(text):
    """ISO 8601 text, as a JSON field keeps a moment, as a datetime: `|date` then shows it in local time."""
    try:
        return datetime.fromisoformat(text) if text else None
    except (TypeError, ValueError):
        return None
