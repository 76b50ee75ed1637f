"""Treasury entries are dated the day the money reached the treasury wallet (the operator's settlement), not
the day the work that asked for it started: a package run that began before midnight in Beijing and whose debits
settled after it enters them on the next day, the day the operator's statement credits them."""
import datetime as dt

import time_machine
from django.utils import timezone

from tax import services
from tax.models import DeductionPackage, TaxDeduction, TreasuryEntry
from tests.tax.helpers import ENTRUST_DATE, batch, item, real_time

NEXT_DAY = ENTRUST_DATE + dt.timedelta(days=1)
BEFORE_MIDNIGHT = dt.datetime.combine(ENTRUST_DATE, dt.time(23, 59, 50), tzinfo=timezone.get_default_timezone())
AFTER_MIDNIGHT = dt.datetime.combine(NEXT_DAY, dt.time(0, 0, 30), tzinfo=timezone.get_default_timezone())


def test_a_package_run_started_before_midnight_enters_debits_settled_after_it_on_the_next_day(tax, tips_outbox,
                                                                                           monkeypatch):
    monkeypatch.setattr(services, "_enqueue_process", lambda package_id: None)
    payers = [tax.taxpayer(balance_fen=1_000_00) for _ in range(2)]
    items = [item(payer=p, protocol_no=tax.signed_and_verified(p).protocol_no, amount_fen=10_01) for p in payers]
    services.receive_batch(message=batch(tax, items), now=timezone.now())
    package = DeductionPackage.objects.get()
    with time_machine.travel(AFTER_MIDNIGHT, tick=True):  # the operator settles after midnight
        services.process_package(package_id=package.pk, now=BEFORE_MIDNIGHT)  # the run began before it
    deductions = list(TaxDeduction.objects.filter(package=package).select_related("transfer"))
    assert {timezone.localdate(d.transfer.settled_at) for d in deductions} == {NEXT_DAY}
    assert {d.tax_date for d in deductions} == {NEXT_DAY}
    assert set(TreasuryEntry.objects.values_list("entry_date", flat=True)) == {NEXT_DAY}
    assert services.batch_result(package=DeductionPackage.objects.get(), now=AFTER_MIDNIGHT).items[0].tax_date == NEXT_DAY


def test_a_real_time_debit_settled_after_midnight_is_entered_on_the_next_day(tax):
    payer = tax.taxpayer(balance_fen=1_000_00)
    message = real_time(tax, payer=payer, protocol_no=tax.signed_and_verified(payer).protocol_no, amount_fen=10_01)
    with time_machine.travel(AFTER_MIDNIGHT, tick=True):
        result = services.deduct_real_time(message=message, now=BEFORE_MIDNIGHT)  # arrived a moment before
    assert result.result == "90000" and result.tax_date == NEXT_DAY
    assert list(TreasuryEntry.objects.values_list("entry_date", flat=True)) == [NEXT_DAY]
