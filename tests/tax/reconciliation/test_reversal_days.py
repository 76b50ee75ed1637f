"""A deduction settled on day D and reversed (冲正) on D+1: each day's run counts what happened that day. D's run
takes our side as it stood at the end of D (the debit still held: matched, before and after the reversal); the
reversal is D+1's: its negative entries are dated D+1, and D+1's run matches them with the operator's reversal
line of D+1 (outcome `reversed`, consistent) instead of calling the serial failed or missing."""
import dataclasses
import datetime as dt

import pytest
from django.utils import timezone

from adapters.tips.interface import Reversal
from tax import reversals, selectors
from tax.handlers import TaxHandler
from tax.models import DeductionState, TreasuryEntry
from tax.reconciliation import services
from tax.reconciliation.models import DiscrepancyCase, Outcome, ReconciliationResult
from tests.tax.helpers import head
from tests.tax.reconciliation.conftest import ENTRUST_DATE, TAX_ORG_CODE, check_detail, check_lines

NEXT_DAY = ENTRUST_DATE + dt.timedelta(days=1)


def outcomes(run) -> dict[str, str]:
    return dict(ReconciliationResult.objects.filter(run=run).values_list("tra_no", "outcome"))


def statement_by_day(monkeypatch, *, reversal_day: dt.date | None):
    """The operator books the day's deductions on D and their reversals on `reversal_day` (None: nowhere)."""
    from treasury.services import wallets

    real, today = wallets.operator_statement, timezone.localdate()

    def operator_statement(*, wallet, day):
        lines = real(wallet=wallet, day=today)
        shift = (day - today) if reversal_day is not None else None
        return ([line for line in lines if not line.request_id.endswith(":reversal")] if day == today else []) + (
            [dataclasses.replace(line, booked_at=line.booked_at + shift) for line in lines
             if line.request_id.endswith(":reversal")] if day == reversal_day else [])

    monkeypatch.setattr(wallets, "operator_statement", operator_statement)


@pytest.fixture
def paid_on_d(day):
    """The day's check detail lists what was paid on D; D's run matches the seven that succeeded."""
    paid = [d for name, d in day.items() if name not in ("ours_failed", "both_failed")]
    TaxHandler().receive_check_detail(check_detail(check_lines(paid)))
    run = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now())
    assert (run.matched_count, run.discrepancy_count) == (7, 0)
    return day


def reverse_next_day(deduction):
    reply = reversals.reverse_deduction(message=Reversal(
        head=head("1021"), tax_org_code=TAX_ORG_CODE, entrust_date=NEXT_DAY, cancel_no="00000001",
        ori_entrust_date=ENTRUST_DATE, ori_tra_no=deduction.tra_no), now=timezone.now() + dt.timedelta(days=1))
    assert reply.cancel_answer == "0"
    deduction.refresh_from_db()
    assert deduction.state == DeductionState.REVERSED


def next_days_check(lines=()):
    """D+1's check detail: what the tax system holds as paid on D+1 (the reversed deduction is D's, not listed)."""
    TaxHandler().receive_check_detail(dataclasses.replace(check_detail(list(lines)), chk_date=NEXT_DAY))


def entries_by_day(deduction) -> list[tuple]:
    return list(TreasuryEntry.objects.filter(deduction=deduction).order_by("entry_date")
                .values_list("entry_date", "amount_fen", "reverses"))


def test_d_stays_matched_and_d_plus_1_accounts_for_the_reversal(paid_on_d, tax, monkeypatch):
    reversed_ = paid_on_d["matched"]  # 100.00
    statement_by_day(monkeypatch, reversal_day=NEXT_DAY)
    reverse_next_day(reversed_)
    assert entries_by_day(reversed_) == [(ENTRUST_DATE, 100_00, False), (NEXT_DAY, -100_00, True)]
    report = {day: sum(r["amount_fen"] for r in selectors.daily_entry_report(entry_date=day, user=tax.staff))
              for day in (ENTRUST_DATE, NEXT_DAY)}
    assert report == {ENTRUST_DATE: 1_450_00, NEXT_DAY: -100_00}

    # D, re-run after the reversal: as it stood at the end of D, the debit was held, listed and credited
    run_d = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now())
    assert reversed_.tra_no not in outcomes(run_d)
    assert (run_d.matched_count, run_d.discrepancy_count, services.check_results(run=run_d)[0].result) == (7, 0, "0")
    assert run_d.totals[Outcome.MATCHED]["ours_fen"] == run_d.totals[Outcome.MATCHED]["operator_fen"] == 1_450_00

    # D+1: the operator's reversal line and our negative entries of D+1 agree; the tax system does not list it
    next_days_check()
    run_next = services.reconcile(check_date=NEXT_DAY, now=timezone.now())
    assert outcomes(run_next) == {reversed_.tra_no: Outcome.REVERSED}
    result = ReconciliationResult.objects.get(run=run_next)
    assert (result.ours_state, result.ours_amount_fen, result.entered_amount_fen, result.operator_count,
            result.operator_amount_fen, result.tax_count) == ("reversed", -100_00, -100_00, 0, -100_00, 0)
    assert run_next.totals == {Outcome.REVERSED: {"count": 1, "tax_fen": 0, "ours_fen": -100_00,
                                                  "operator_fen": -100_00}}
    assert (run_next.discrepancy_count, services.check_results(run=run_next)[0].result) == (0, "0")
    assert not DiscrepancyCase.objects.exists()


def test_a_reversal_the_operator_did_not_book_that_day_is_a_discrepancy_of_that_day(paid_on_d, monkeypatch):
    reversed_ = paid_on_d["matched"]
    statement_by_day(monkeypatch, reversal_day=None)  # the operator's statement of D+1 has no reversal line
    reverse_next_day(reversed_)
    run_d = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now())
    assert (run_d.matched_count, run_d.discrepancy_count) == (7, 0)
    next_days_check()
    run_next = services.reconcile(check_date=NEXT_DAY, now=timezone.now())
    # found through our reversal entries of D+1, with nothing at the operator that day
    assert outcomes(run_next) == {reversed_.tra_no: Outcome.MISSING_OPERATOR}
    case = DiscrepancyCase.objects.get()
    assert (case.tra_no, case.check_date, case.outcome) == (reversed_.tra_no, NEXT_DAY, Outcome.MISSING_OPERATOR)
    assert services.check_results(run=run_next)[0].result == "1"


def test_a_reversal_on_the_same_day_is_still_consistent_on_that_day(day):
    """The rule does not change D when the reversal is D's own: credit and reversal net off (both failed)."""
    reversed_ = day["dropped"]
    reply = reversals.reverse_deduction(message=Reversal(
        head=head("1021"), tax_org_code=TAX_ORG_CODE, entrust_date=ENTRUST_DATE, cancel_no="00000002",
        ori_entrust_date=ENTRUST_DATE, ori_tra_no=reversed_.tra_no), now=timezone.now())
    assert reply.cancel_answer == "0"
    paid = [d for name, d in day.items() if name not in ("dropped", "ours_failed", "both_failed")]
    TaxHandler().receive_check_detail(check_detail(check_lines(paid)))
    run = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now())
    assert outcomes(run)[reversed_.tra_no] == Outcome.BOTH_FAILED
    assert (run.matched_count, run.discrepancy_count) == (6, 0)


def test_a_debit_answered_94999_and_reversed_after_midnight_is_the_operators_credit_on_d_and_its_reversal_on_d_plus_1(
        tax, settings, monkeypatch):
    """Never ours (never entered; the tax system was told it failed): D shows the money that sat in the treasury
    overnight, D+1 accounts for its reversal."""
    from adapters.ecny.client import get_operator_client
    from adapters.tips.interface import ResultCode
    from tax import services as tax_services
    from tax.models import TaxDeduction
    from tests.tax.helpers import real_time

    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 0.5
    get_operator_client.cache_clear()
    tax.ecny.admin.set_fault("timeout_after_apply", count=1, sleep_seconds=1.5)
    message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=400_00)
    assert tax_services.deduct_real_time(message=message, now=timezone.now()).result == ResultCode.TIMEOUT
    assert tax_services.resolve_unknown_deductions(now=timezone.now() + dt.timedelta(days=1)) == {"reversed": 1}
    deduction = TaxDeduction.objects.get()
    assert not TreasuryEntry.objects.exists()
    statement_by_day(monkeypatch, reversal_day=NEXT_DAY)

    TaxHandler().receive_check_detail(check_detail([]))  # the tax system holds nothing as paid on D
    run_d = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now())
    assert outcomes(run_d) == {deduction.tra_no: Outcome.OURS_FAILED}
    assert run_d.totals[Outcome.OURS_FAILED]["operator_fen"] == 400_00
    next_days_check()
    run_next = services.reconcile(check_date=NEXT_DAY, now=timezone.now())
    assert outcomes(run_next) == {deduction.tra_no: Outcome.REVERSED}
    assert run_next.totals[Outcome.REVERSED] == {"count": 1, "tax_fen": 0, "ours_fen": -400_00, "operator_fen": -400_00}
