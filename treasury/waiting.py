"""What is waiting for the signed-in person (待办), for the dashboard: per domain, the documents whose next step
is theirs (a refund order to approve, a payroll run to submit ...), counted, each count linking to the list
that shows those documents.

Each domain answers for its own documents with a `waiting_for(user)` function; `SOURCES` names them in the
order the dashboard shows them (dotted paths, as Django names middleware: the core imports no domain code).
A source returns nothing, without a query, to a user whose roles take no step in it, and counts only what
the user may act on: their organization's documents, and not an approval of their own work (maker-checker).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.module_loading import import_string

SOURCES = [
    "fiscal_disbursement.selectors.waiting_for",
    "payroll.selectors.waiting_for",
    "tax.selectors.waiting_for",
    "tax.reconciliation.selectors.waiting_for",
    "social_security.selectors.waiting_for",
]


@dataclass(frozen=True)
class Waiting:
    key: str  # stable, for tests and page markup
    label: str | Promise
    count: int
    url: str  # the list that shows them


def waiting_for(user) -> list[Waiting]:
    """Every source's items for the user that have something waiting."""
    return [item for source in SOURCES for item in import_string(source)(user) if item.count]


# A failed transfer a domain has dealt with needs no person any more: each function returns a condition on a
# failed transfer (an Exists over the domain's source document, found by the transfer's source_type and
# source_id) that holds when its domain has done with it: a line confirmed returned, a deduction answered.
HANDLED_FAILURES = [
    "fiscal_disbursement.selectors.failure_handled",
    "payroll.selectors.failure_handled",
    "tax.selectors.failure_handled",
]


def failure_handled():
    """The domains' conditions together (`HANDLED_FAILURES`), for a queryset of transfers."""
    conditions = [import_string(source)() for source in HANDLED_FAILURES]
    combined = conditions[0]
    for condition in conditions[1:]:
        combined |= condition
    return combined
