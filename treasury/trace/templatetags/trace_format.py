"""Labels for trace pages: event kinds and chain status in the page's language.

    {% load trace_format %}  {{ event.kind|event_label }}  {{ event.chain_status|chain_label }}
"""
from django import template
from django.utils.translation import gettext_lazy as _

from treasury.trace import selectors

register = template.Library()

EVENT_LABELS = {
    "transfer.created": _("Transfer created"),
    "transfer.submitted": _("Submitted to the operator"),
    "transfer.outcome_unknown": _("Outcome unknown"),
    "transfer.settled": _("Settled"),
    "transfer.failed": _("Failed"),
    "transfer.requeued": _("Queued again"),
    "transfer.cancelled": _("Cancelled"),
    "transfer.returned": _("Returned"),
    "transfer.reversed": _("Reversed"),
}

CHAIN_LABELS = {
    selectors.CHAIN_OK: _("intact"),
    selectors.CHAIN_ALTERED: _("altered"),
    selectors.CHAIN_BROKEN: _("link broken"),
    selectors.CHAIN_GAP: _("predecessor missing"),
}


@register.filter
def event_label(kind):
    """A known event kind in words; any other (a domain's own) shown as it is."""
    return EVENT_LABELS.get(str(kind), kind)


@register.filter
def chain_label(status):
    return CHAIN_LABELS.get(str(status), status)


@register.filter
def chain_css(status):
    return "state-settled" if status == selectors.CHAIN_OK else "state-failed"


@register.filter
def short_hash(digest):
    return f"{str(digest)[:12]}…" if digest else ""
