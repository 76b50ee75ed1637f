"""Read paths for receipts, scoped to what the user may see (treasury.access.scoping)."""
from __future__ import annotations

from django.db.models import Q, QuerySet

from treasury.access.scoping import sees_all_organizations, user_organization, visible_transfers

from .models import Receipt


def visible_receipts(user) -> QuerySet[Receipt]:
    """Receipts of transfers the user may see, and summaries of the batches their organization ran (auditors and
    administrators: every one). A summary is the payer's: its total and counts cover every payee of the batch, so
    a payee (an employee paid by a payroll run, an organization paid in a batch) sees the receipt of its own
    transfer, not the summary of the batch it was paid in."""
    transfers = visible_transfers(user)
    org = user_organization(user)
    if sees_all_organizations(user):
        batches = Q(kind=Receipt.Kind.BATCH)
    elif org is not None:
        batches = Q(kind=Receipt.Kind.BATCH, batch_ref__in=transfers.filter(organization=org).values("batch_ref"))
    else:
        batches = Q(pk__in=[])  # a person acting for themselves runs no batch
    return Receipt.objects.filter(Q(kind=Receipt.Kind.TRANSFER, transfer__in=transfers.values("pk")) | batches)


def receipt_by_code(*, number: str, code: str) -> Receipt | None:
    """The receipt a QR code points at, or None when the number is unknown or the code is wrong."""
    import hmac

    code = (code or "").strip().upper()
    if not code.isascii():  # a code is base32; compare_digest refuses (TypeError) a text that is not ASCII
        return None
    receipt = Receipt.objects.filter(number=number).first()
    if receipt is None or not hmac.compare_digest(receipt.verification_code, code):
        return None
    return receipt


def downloadable_receipt_numbers(*, user, rows) -> set[str]:
    """Numbers of the receipts of these rows' transfers (any rows with a `transfer`, e.g. payroll dues calls,
    tax refunds; a receipt is issued once a transfer settles) that this user may download."""
    numbers = [r.transfer.receipt.number for r in rows if r.transfer_id and hasattr(r.transfer, "receipt")]
    if not numbers:
        return set()
    return set(visible_receipts(user).filter(number__in=numbers).values_list("number", flat=True))
