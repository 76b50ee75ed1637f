"""Labels for trace pages: event kinds, actors and chain status in the page's language (kinds and actors:
`treasury.trace.labels`).

    {% load trace_format %}  {{ event.kind|event_label }}  {{ event.actor|actor_label }}  {{ event.chain_status|chain_label }}
    {% for detail in event.data|event_details %}{{ detail.label }} {{ detail.value }}{% endfor %}
"""
from django import template
from django.utils.translation import gettext_lazy as _

from treasury.trace import labels, selectors

register = template.Library()

CHAIN_LABELS = {
    selectors.CHAIN_OK: _("intact"),
    selectors.CHAIN_ALTERED: _("altered"),
    selectors.CHAIN_BROKEN: _("link broken"),
    selectors.CHAIN_GAP: _("predecessor missing"),
}


@register.filter
def event_label(kind):
    return labels.event_label(str(kind))


@register.filter
def actor_label(actor):
    return labels.actor_label(str(actor))


@register.filter
def event_details(data):
    """A stored event's data, masked and in words (`selectors.event_details`)."""
    return selectors.event_details(data or {})


@register.filter
def chain_label(status):
    return CHAIN_LABELS.get(str(status), status)


@register.filter
def chain_css(status):
    return "state-settled" if status == selectors.CHAIN_OK else "state-failed"


@register.filter
def short_hash(digest):
    return f"{str(digest)[:12]}…" if digest else ""
