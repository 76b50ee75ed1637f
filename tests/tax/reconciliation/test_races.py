"""Integration (PostgreSQL row locks): the beat's reconciliation and a person's `reconcile_tax` of the same day
at the same moment make one run and open each case once."""
import pytest
from django.utils import timezone

from django_fsm import TransitionNotAllowed

from tax.handlers import TaxHandler
from tax.models import TaxDeduction, TreasuryEntry
from tax.reconciliation import corrections, services
from tax.reconciliation.models import CaseCorrection, DiscrepancyCase, Outcome, ReconciliationRun
from tests import factories as f
from tests.concurrency import at_once
from tests.tax.reconciliation.conftest import ENTRUST_DATE, check_detail, planted_lines, planted_statement
from tests.tax.reconciliation.test_corrections import cases  # noqa: F401 (the fixture)
from treasury.access import roles
from treasury.models import Transfer
from treasury.services.ledger import check_ledger

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("needs_postgresql")]


def test_two_reconciliations_of_a_day_at_once_make_one_run_and_one_case_a_discrepancy(day):
    TaxHandler().receive_check_detail(check_detail(planted_lines(day)))  # the day is complete: reconciled once
    before = ReconciliationRun.objects.get().runs
    statement = planted_statement(day)
    runs = at_once(*[lambda: services.reconcile(check_date=ENTRUST_DATE, now=timezone.now(),
                                                statement_rows=statement)] * 2)
    assert all(isinstance(r, ReconciliationRun) for r in runs), runs
    run = ReconciliationRun.objects.get()
    assert (run.runs, run.matched_count, run.discrepancy_count) == (before + 2, 2, 7)
    assert DiscrepancyCase.objects.count() == 7  # found three times, opened once each


def test_one_correction_approved_by_two_checkers_at_once_moves_its_money_once(cases, tax, day):
    second_checker = f.make_user(role=roles.TAX_STAFF, organization=tax.authority)
    payer = day["dropped"].pay_acct
    before = tax.balance(payer)
    proposed = corrections.propose_correction(case_id=cases[Outcome.MISSING_TAX].pk, user=tax.staff, kind="refund",
                                              amount_fen=300_00, reason="多扣 (over-debit)", now=timezone.now())
    outcomes = at_once(*[lambda user=user: corrections.approve_correction(correction_id=proposed.pk, user=user,
                                                                          now=timezone.now())
                         for user in (tax.checker, second_checker)])
    assert sum(isinstance(o, CaseCorrection) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, TransitionNotAllowed) for o in outcomes) == 1, outcomes
    assert Transfer.objects.filter(batch_ref=proposed.stream_key).count() == 1
    assert tax.balance(payer) == before + 300_00
    assert TreasuryEntry.objects.filter(correction=proposed).count() >= 1
    assert sum(TreasuryEntry.objects.filter(correction=proposed).values_list("amount_fen", flat=True)) == -300_00
    assert check_ledger().problems == []


def test_a_refund_approved_as_the_tax_system_reverses_the_debit_pays_the_taxpayer_back_once(cases, tax, day):
    from adapters.tips.interface import Reversal
    from tests.tax.helpers import head

    dropped = day["dropped"]
    tax.ecny.admin.fund(wallet_id=tax.treasury_wallet.wallet_id, amount_fen=10_000_00)
    before = tax.balance(dropped.pay_acct)
    proposed = corrections.propose_correction(case_id=cases[Outcome.MISSING_TAX].pk, user=tax.staff, kind="refund",
                                              amount_fen=300_00, reason="多扣 (over-debit)", now=timezone.now())
    reversal = Reversal(head=head("1021"), tax_org_code=dropped.tax_org_code, entrust_date=ENTRUST_DATE,
                        cancel_no="00000009", ori_entrust_date=dropped.entrust_date, ori_tra_no=dropped.tra_no,
                        cancel_reason="wrong voucher")
    approval, reply = at_once(
        lambda: corrections.approve_correction(correction_id=proposed.pk, user=tax.checker, now=timezone.now()),
        lambda: TaxHandler().reverse_deduction(reversal),
    )
    refunded = isinstance(approval, CaseCorrection)
    reversed_ = reply.cancel_answer == "0"
    assert refunded != reversed_, (approval, reply)  # one of them, never both
    if not refunded:
        assert isinstance(approval, services.ReconciliationError) and approval.code == "exceeds_held", approval
    assert tax.balance(dropped.pay_acct) == before + 300_00
    assert TaxDeduction.objects.get(pk=dropped.pk).state == ("succeeded" if refunded else "reversed")
    assert check_ledger().problems == []


def test_a_correction_approved_as_its_case_is_resolved_moves_money_only_for_an_open_case(cases, tax, day):
    payer = day["amount"].pay_acct
    before = tax.balance(payer)
    case = cases[Outcome.AMOUNT_MISMATCH]
    proposed = corrections.propose_correction(case_id=case.pk, user=tax.staff, kind="collect", amount_fen=1,
                                              reason="少扣 1 分 (1 fen short)", now=timezone.now())
    approval, resolution = at_once(
        lambda: corrections.approve_correction(correction_id=proposed.pk, user=tax.checker, now=timezone.now()),
        lambda: services.resolve_case(case_id=case.pk, user=tax.staff, reason="已线下处理 (settled otherwise)",
                                      now=timezone.now()),
    )
    assert isinstance(resolution, DiscrepancyCase), resolution
    if isinstance(approval, CaseCorrection):  # approved while the case was open: collected, then resolved
        assert tax.balance(payer) == before - 1
    else:
        assert isinstance(approval, services.ReconciliationError) and approval.code == "invalid_state", approval
        assert tax.balance(payer) == before and not Transfer.objects.filter(batch_ref=proposed.stream_key).exists()
    assert check_ledger().problems == []


def test_a_settled_correction_entered_twice_at_once_is_entered_once(cases, tax):
    """Its transfer's announcement and the sweep book a settled correction's treasury entries at the same moment."""
    from tax.reconciliation.corrections import book_entries_when_settled
    from treasury.services.transfers import batch_decided

    uid = "tax_reconciliation.book_entries_when_settled"
    batch_decided.disconnect(dispatch_uid=uid)  # not booked when the transfer settles: both at once are the first
    try:
        proposed = corrections.propose_correction(case_id=cases[Outcome.MISSING_TAX].pk, user=tax.staff,
                                                  kind="refund", amount_fen=300_00, reason="多扣 (over-debit)",
                                                  now=timezone.now())
        corrections.approve_correction(correction_id=proposed.pk, user=tax.checker, now=timezone.now())
    finally:
        batch_decided.connect(book_entries_when_settled, dispatch_uid=uid)
    assert not TreasuryEntry.objects.filter(correction=proposed).exists()
    booked = at_once(*[lambda: corrections.book_correction_entries(now=timezone.now())] * 2)
    assert sorted(booked) == [0, 1], booked
    assert sum(TreasuryEntry.objects.filter(correction=proposed).values_list("amount_fen", flat=True)) == -300_00
