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
