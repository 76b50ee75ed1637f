"""Read paths for receipts, scoped to what the user may see (treasury.access.scoping)."""
from __future__ import annotations

from django.db.models import Q, QuerySet

from treasury.access.scoping import visible_transfers

from .models import Receipt


def visible_receipts(user) -> QuerySet[Receipt]:
    """Receipts of transfers the user may see, and summaries of batches that hold such transfers."""
    transfers = visible_transfers(user)
    return Receipt.objects.filter(
        Q(kind=Receipt.Kind.TRANSFER, transfer__in=transfers.values("pk"))
        | Q(kind=Receipt.Kind.BATCH, batch_ref__in=transfers.values("batch_ref"))
    )


def receipt_by_code(*, number: str, code: str) -> Receipt | None:
    """The receipt a QR code points at, or None when the number is unknown or the code is wrong."""
    import hmac

    receipt = Receipt.objects.filter(number=number).first()
    if receipt is None or not hmac.compare_digest(receipt.verification_code, (code or "").strip().upper()):
        return None
    return receipt


def downloadable_receipt_numbers(*, user, rows) -> set[str]:
    """Numbers of the receipts of these rows' transfers (any rows with a `transfer`, e.g. payroll dues calls,
    tax refunds; a receipt is issued once a transfer settles) that this user may download."""
    numbers = [r.transfer.receipt.number for r in rows if r.transfer_id and hasattr(r.transfer, "receipt")]
    if not numbers:
        return set()
    return set(visible_receipts(user).filter(number__in=numbers).values_list("number", flat=True))
