"""What the trace's events, actors and subjects are called on pages and in the API, in the reader's language.

An event's `kind` ("tax.refund.approved") is what the trace stores and hashes; people read its label ("Refund order
approved", 退库申请已批准). The treasury core names its own kinds here (transfers, receipts); each domain names its
kinds in its AppConfig (`trace_event_labels`), and the documents its events are about (`trace_subjects`: a label,
and the URL name of one's page by id where there is one), and the keys of its events' details
(`trace_detail_labels`: "succ_num" reads 成功总笔数), so the core imports no domain. The core names the keys it
writes itself and those two or more domains write. A kind or key nobody names is shown as it is written. Labels
carry the contexts "trace event", "trace actor", "trace subject" and "trace detail", so that "Paid" here is not a
page's "Paid".
"""
from functools import cache

from django.apps import apps
from django.urls import reverse
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
    "transfer.reversal_refused": pgettext_lazy("trace event", "Reversal refused by the operator"),
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

CORE_DETAIL_LABELS = {
    # What the core writes: transfers and receipts.
    "key": pgettext_lazy("trace detail", "Idempotency key"),
    "payer": pgettext_lazy("trace detail", "Payer wallet"),
    "payee": pgettext_lazy("trace detail", "Payee wallet"),
    "purpose": pgettext_lazy("trace detail", "Purpose"),
    "conditions": pgettext_lazy("trace detail", "Smart-contract conditions"),
    "submitted": pgettext_lazy("trace detail", "Sent when created"),
    "operator_txn_id": pgettext_lazy("trace detail", "Operator transaction number"),
    "code": pgettext_lazy("trace detail", "Result code"),
    "message": pgettext_lazy("trace detail", "Message"),
    "reason": pgettext_lazy("trace detail", "Reason"),
    "kind": pgettext_lazy("trace detail", "Kind"),
    "receipt_number": pgettext_lazy("trace detail", "Receipt number"),
    "pdf_sha256": pgettext_lazy("trace detail", "PDF digest (SHA-256)"),
    # What two or more domains write.
    "transfer": pgettext_lazy("trace detail", "Transfer"),
    "transfer_state": pgettext_lazy("trace detail", "Transfer state"),
    "wallet": pgettext_lazy("trace detail", "Wallet"),
    "result": pgettext_lazy("trace detail", "Result"),
    "note": pgettext_lazy("trace detail", "Note"),
    "attempt": pgettext_lazy("trace detail", "Attempts"),
    "lines": pgettext_lazy("trace detail", "Lines"),
    "paid": pgettext_lazy("trace detail", "Paid"),
    "failed": pgettext_lazy("trace detail", "Failed"),
    "returned": pgettext_lazy("trace detail", "Returned"),
    "problems": pgettext_lazy("trace detail", "Problems"),
    "protocol_no": pgettext_lazy("trace detail", "Agreement number"),
    "voucher_no": pgettext_lazy("trace detail", "Voucher number"),
}

CORE_SUBJECTS = {
    "receipts.batch": (pgettext_lazy("trace subject", "Summary receipt"), None),
}


def _with_apps(core: dict, attribute: str) -> dict:
    """`core` and, over it, each installed app's AppConfig `attribute` (a dict)."""
    merged = dict(core)
    for config in apps.get_app_configs():
        merged.update(getattr(config, attribute, {}))
    return merged


@cache
def event_labels() -> dict:
    """Every named kind: the core's and each installed app's `trace_event_labels`."""
    return _with_apps(CORE_EVENT_LABELS, "trace_event_labels")


def event_label(kind: str) -> str:
    return str(event_labels().get(kind, kind))


def actor_label(actor: str) -> str:
    return str(ACTOR_LABELS.get(actor, actor))


@cache
def subjects() -> dict:
    """{subject type: (label, URL name of its page by id or None)}: the core's and each app's `trace_subjects`."""
    return _with_apps(CORE_SUBJECTS, "trace_subjects")


@cache
def detail_labels() -> dict:
    """Every named detail key: the core's and each installed app's `trace_detail_labels`."""
    return _with_apps(CORE_DETAIL_LABELS, "trace_detail_labels")


def detail_label(key: str) -> str:
    return str(detail_labels().get(key, key))


def subject_label(subject_type: str) -> str:
    known = subjects().get(subject_type)
    return str(known[0]) if known else subject_type


def subject_url(subject_type: str, subject_id: str) -> str:
    """The subject's page, or "" (no page, or an id that is not one). The page itself decides who may see it."""
    known = subjects().get(subject_type)
    if not known or not known[1] or not str(subject_id).isdecimal():
        return ""
    return reverse(known[1], args=[int(subject_id)])
