"""Reconciliation (对账) of employers' premium payments: three sources keyed on the payment's request id
(the transfer's idempotency key `social:<declaration id>:<attempt>`):

    ours       declarations paid (or already reconciled) whose transfer settled on the check date
    operator   the operator's statement of every region's fund wallet for that day (credits)
    authority  the collecting authority's acknowledgement of the payment notice (5103: voucher and amount)

Outcomes, in the order they are decided (as the tax engine's table in tax/README.md, for these sources):

| outcome | meaning |
| --- | --- |
| matched | all three agree on the amount; the declaration moves paid -> reconciled |
| duplicate_operator | the operator booked the key more than once |
| missing_ours | the operator credited a social-insurance key we hold no paid declaration for |
| missing_operator | we recorded a payment the operator's statement does not show |
| amount_mismatch | the operator's amount differs from the confirmed total |
| not_acknowledged | the authority has not acknowledged the payment notice yet (sent again by the sweep) |

The tax reconciliation engine (tax/reconciliation/) matches the tax system's 3111 check records against tax
deductions and treasury entries in one grouped SQL statement; its tables are the tax ones, so this module
follows the same stacking-and-grouping idea over its own three sources rather than changing that engine.
A day holds as many declarations as employers pay that day (hundreds), so the grouping is done in memory.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from social_security.models import Declaration, FundAccount, ReconciliationRun
from social_security.models import DeclarationState as S
from treasury.models import TransferState
from treasury.trace.services import EventSpec, append_events

KEY_PREFIX = "social:"


def fetch_statement(*, check_date: dt.date) -> list[tuple[str, str, int, str]]:
    """(request_id, direction, amount_fen, kind) of the day's bookings on every fund wallet.

    Raises OperatorUnavailable / OperatorRejected: the statement could not be fetched (nothing changes).
    """
    from treasury.services.wallets import operator_statement

    rows = []
    for fund in FundAccount.objects.select_related("wallet"):
        for line in operator_statement(wallet=fund.wallet, day=check_date):
            rows.append((line.request_id, line.direction, line.amount_fen, line.kind))
    return rows


def reconcile_day(*, check_date: dt.date, now: dt.datetime, statement_rows: list[tuple] | None = None
                  ) -> ReconciliationRun:
    """Reconcile one check date; matched declarations become reconciled. Idempotent: a re-run replaces the
    day's discrepancies and moves on what matches now. No lock is held while the operator is asked."""
    if statement_rows is None:
        statement_rows = fetch_statement(check_date=check_date)
    operator = defaultdict(lambda: [0, 0])  # request id -> [credits booked, net amount]
    for request_id, direction, amount_fen, kind in statement_rows:
        if not request_id.startswith(KEY_PREFIX):
            continue
        entry = operator[request_id]
        entry[0] += 1 if direction == "credit" and kind == "transfer" else 0
        entry[1] += amount_fen if direction == "credit" else -amount_fen
    day_start = timezone.make_aware(dt.datetime.combine(check_date, dt.time.min))
    day_end = day_start + dt.timedelta(days=1)
    with transaction.atomic():
        ours = list(Declaration.objects.select_for_update(of=("self",)).select_related("transfer")
                    .filter(state__in=[S.PAID, S.RECONCILED], transfer__state=TransferState.SETTLED,
                            transfer__settled_at__gte=day_start, transfer__settled_at__lt=day_end).order_by("pk"))
        by_key = {d.transfer.idempotency_key: d for d in ours}
        discrepancies, matched = [], []
        for key in sorted(set(by_key) | set(operator)):
            declaration, booked = by_key.get(key), operator.get(key)
            ours_fen = declaration.transfer.amount_fen if declaration else None
            if booked and booked[0] > 1:
                outcome = "duplicate_operator"
            elif declaration is None:
                outcome = "missing_ours"
            elif booked is None:
                outcome = "missing_operator"
            elif booked[1] != ours_fen or ours_fen != declaration.confirmed_total_fen:
                outcome = "amount_mismatch"
            elif declaration.payment_notified_at is None:
                outcome = "not_acknowledged"
            else:
                matched.append(declaration)
                continue
            discrepancies.append({
                "outcome": outcome, "request_id": key, "ours_fen": ours_fen,
                "operator_fen": booked[1] if booked else None,
                "declaration_no": declaration.declaration_no if declaration else "",
                "voucher_no": declaration.voucher_no if declaration else ""})
        for declaration in matched:
            if declaration.state == S.PAID:
                declaration.reconcile()
                declaration.reconciled_at = now
                declaration.save()
                append_events(stream_key=declaration.stream_key, now=now, events=[EventSpec(
                    kind="social.declaration.reconciled", subject_type="social.declaration",
                    subject_id=str(declaration.pk), actor="system", amount_fen=declaration.transfer.amount_fen,
                    source_ref=declaration.declaration_no, data={"check_date": check_date.isoformat()})])
        run, created = ReconciliationRun.objects.select_for_update().get_or_create(
            check_date=check_date, defaults={"ran_at": now})
        run.matched_count, run.discrepancy_count = len(matched), len(discrepancies)
        run.discrepancies, run.runs, run.ran_at = discrepancies, run.runs + 1, now
        run.save()
    return run
