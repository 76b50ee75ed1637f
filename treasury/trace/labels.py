"""What the trace's events and actors are called on pages and in the API, in the reader's language.

An event's `kind` ("tax.refund.approved") is what the trace stores and hashes; people read its label ("Refund order
approved", 退库申请已批准). The treasury core names its own kinds here (transfers, receipts); each domain names its
kinds in its AppConfig (`trace_event_labels`), so the core imports no domain. A kind nobody names is shown as it is
written. Labels carry the context "trace event" ("trace actor"), so that "Paid" here is not a page's "Paid".
"""
from functools import cache

from django.apps import apps
from django.utils.translation import pgettext_lazy

CORE_EVENT_LABELS = {
    "transfer.created": pgettext_lazy("trace event", "Transfer created"),
    "transfer.held": pgettext_lazy("trace event", "Transfer held"),
    "transfer.released": pgettext_lazy("trace event", "Transfer released"),
    "transfer.submitted": pgettext_lazy("trace event", "Submitted to the operator"),
    "transfer.outcome_unknown": pgettext_lazy("trace event", "Transfer outcome unknown"),
    "transfer.settled": pgettext_lazy("trace event", "Transfer settled"),
    "transfer.failed": pgettext_lazy("trace event", "Transfer failed"),
    "transfer.requeued": pgettext_lazy("trace event", "Transfer queued again"),
    "transfer.cancelled": pgettext_lazy("trace event", "Transfer cancelled"),
    "transfer.returned": pgettext_lazy("trace event", "Transfer returned"),
    "transfer.reversed": pgettext_lazy("trace event", "Transfer reversed"),
    "receipt.issued": pgettext_lazy("trace event", "Receipt issued"),
}

# The actors that are not people: a person's events carry their username.
ACTOR_LABELS = {
    "system": pgettext_lazy("trace actor", "the service"),
    "operator": pgettext_lazy("trace actor", "e-CNY operator"),
    "tips": pgettext_lazy("trace actor", "tax system"),
    "tax_system": pgettext_lazy("trace actor", "tax system"),
    "budget-system": pgettext_lazy("trace actor", "budget system"),
    "taxpayer": pgettext_lazy("trace actor", "the taxpayer"),
}


@cache
def event_labels() -> dict:
    """Every named kind: the core's and each installed app's `trace_event_labels`."""
    labels = dict(CORE_EVENT_LABELS)
    for config in apps.get_app_configs():
        labels.update(getattr(config, "trace_event_labels", {}))
    return labels


def event_label(kind: str) -> str:
    return str(event_labels().get(kind, kind))


def actor_label(actor: str) -> str:
    return str(ACTOR_LABELS.get(actor, actor))
