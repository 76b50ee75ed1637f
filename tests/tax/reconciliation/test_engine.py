import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from adapters.tips.interface import ResultCode
from tax.handlers import TaxHandler
from tax.models import TaxDeduction
from tax.reconciliation import services
from tax.reconciliation.models import (
    CaseState,
    CheckRecord,
    DiscrepancyCase,
    Outcome,
    ReconciliationResult,
    ReconciliationRun,
    RunState,
)
from tests.tax.reconciliation.conftest import (
    ENTRUST_DATE,
    TAX_ORG_CODE,
    check_detail,
    planted_lines,
    planted_statement,
)


def run_planted(day, **kwargs):
    return services.reconcile(check_date=ENTRUST_DATE, now=timezone.now(), statement_rows=planted_statement(day),
                              **kwargs)


def outcomes(run) -> dict[str, str]:
    return dict(ReconciliationResult.objects.filter(run=run).values_list("tra_no", "outcome"))


def test_every_planted_discrepancy_is_found_and_classified(day):
    ack = TaxHandler().receive_check_detail(check_detail(planted_lines(day)))
    assert ack.result == ResultCode.SUCCESS
    run = run_planted(day)
    assert run.state == RunState.DONE
    # matched serials are counted, not written as result rows
    assert outcomes(run) == {
        day["amount"].tra_no: Outcome.AMOUNT_MISMATCH,
        day["dropped"].tra_no: Outcome.MISSING_TAX,
        day["dup_tax"].tra_no: Outcome.DUPLICATE_TAX,
        day["dup_operator"].tra_no: Outcome.DUPLICATE_OPERATOR,
        day["no_operator"].tra_no: Outcome.MISSING_OPERATOR,
        day["ours_failed"].tra_no: Outcome.OURS_FAILED,
        day["both_failed"].tra_no: Outcome.BOTH_FAILED,
        "99999999": Outcome.MISSING_OURS,
    }
    # Totals per outcome, and the run's sums
    assert run.totals[Outcome.MATCHED] == {"count": 2, "tax_fen": 150_00, "ours_fen": 150_00, "operator_fen": 150_00}
    assert run.totals[Outcome.AMOUNT_MISMATCH] == {"count": 1, "tax_fen": 200_01, "ours_fen": 200_00,
                                                   "operator_fen": 200_00}
    assert run.totals[Outcome.DUPLICATE_OPERATOR]["operator_fen"] == 300_00
    assert (run.matched_count, run.discrepancy_count, run.reply_result) == (2, 7, "1")
    assert run.ours_amount_fen == sum(d.amount_fen for d in day.values())
    # one open case per discrepancy, linked from its result
    cases = DiscrepancyCase.objects.all()
    assert sorted(c.outcome for c in cases) == sorted(o for o in outcomes(run).values()
                                                      if o not in (Outcome.MATCHED, Outcome.BOTH_FAILED))
    assert {c.state for c in cases} == {CaseState.OPEN}
    assert ReconciliationResult.objects.filter(run=run, case__isnull=False).count() == 7
    assert services.check_results(run=run)[0].result == "1"
    assert sum(v["count"] for v in run.totals.values()) == len(outcomes(run)) + run.matched_count


def test_a_clean_day_matches_and_answers_0(day):
    from tests.tax.reconciliation.conftest import check_lines

    paid = [d for name, d in day.items() if name not in ("ours_failed", "both_failed")]
    TaxHandler().receive_check_detail(check_detail(check_lines(paid)))
    run = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now(),
                             statement_rows=services.fetch_statement(check_date=timezone.localdate()))
    assert run.discrepancy_count == 0 and run.matched_count == 7
    assert set(outcomes(run).values()) == {Outcome.BOTH_FAILED}  # matched serials have no result row
    assert run.totals[Outcome.MATCHED]["count"] == 7
    assert services.check_results(run=run)[0].result == "0"
    assert not DiscrepancyCase.objects.exists()


def test_a_rerun_replaces_results_and_keeps_cases_and_their_history(day, tax):
    TaxHandler().receive_check_detail(check_detail(planted_lines(day)))
    first = run_planted(day)
    case = DiscrepancyCase.objects.get(outcome=Outcome.AMOUNT_MISMATCH)
    services.investigate_case(case_id=case.pk, user=tax.staff, now=timezone.now())
    again = run_planted(day)
    assert again.pk == first.pk and again.runs == first.runs + 1
    assert outcomes(again) == outcomes(first)
    assert ReconciliationResult.objects.count() == 8  # ten serials, two matched (counted, no row)
    assert again.totals == first.totals and again.matched_count == 2
    assert DiscrepancyCase.objects.count() == 7
    case.refresh_from_db()
    assert case.state == CaseState.INVESTIGATING and len(case.history) == 1
    assert ReconciliationResult.objects.get(run=again, tra_no=case.tra_no).case_id == case.pk


def test_the_day_waits_until_every_package_has_arrived(day):
    lines = planted_lines(day)
    TaxHandler().receive_check_detail(check_detail(lines[:5], child_pack_num=2, cur_pack_no=1))
    run = run_planted(day)
    assert run.state == RunState.WAITING and not ReconciliationResult.objects.exists()
    again = TaxHandler().receive_check_detail(check_detail(lines[:5], child_pack_num=2, cur_pack_no=1))
    assert again.result == ResultCode.DUPLICATE
    TaxHandler().receive_check_detail(check_detail(lines[5:], child_pack_num=2, cur_pack_no=2))
    assert CheckRecord.objects.count() == len(lines)
    run = run_planted(day)
    assert run.state == RunState.DONE and outcomes(run)[day["dup_tax"].tra_no] == Outcome.DUPLICATE_TAX


def test_a_package_whose_count_disagrees_with_its_lines_is_refused(day):
    detail = check_detail(planted_lines(day))
    from dataclasses import replace

    ack = TaxHandler().receive_check_detail(replace(detail, all_num=detail.all_num + 1))
    assert ack.result == ResultCode.PARSE_ERROR and not CheckRecord.objects.exists()


def test_one_tax_authority_at_a_time(day):
    TaxHandler().receive_check_detail(check_detail(planted_lines(day)))
    run = run_planted(day, tax_org_code="13702000000")
    assert run.tax_org_code == "13702000000" and not ReconciliationResult.objects.filter(run=run).exists()
    run = run_planted(day, tax_org_code=TAX_ORG_CODE)
    assert len(outcomes(run)) == 8 and run.matched_count == 2
    assert sum(v["count"] for v in run.totals.values()) == 10


def test_the_command_reconciles_a_date(day, monkeypatch, capsys):
    TaxHandler().receive_check_detail(check_detail(planted_lines(day)))
    rows = planted_statement(day)
    monkeypatch.setattr(services, "fetch_statement", lambda check_date: rows)
    call_command("reconcile_tax", "--date", ENTRUST_DATE.isoformat())
    out = capsys.readouterr().out
    assert "done" in out and "amount_mismatch: 1" in out
    assert ReconciliationRun.objects.get(check_date=ENTRUST_DATE).discrepancy_count == 7


def test_the_command_refuses_a_bad_date(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("reconcile_tax", "--date", "2026-13-01")


def test_request_ids_of_tax_transfers_give_the_serial_key():
    assert services.parse_request_id("tax:13701000000:20261126:00000042") == ("13701000000", dt.date(2026, 11, 26),
                                                                             "00000042")
    assert services.parse_request_id("tax:13701000000:20261126:00000042:reversal") == (
        "13701000000", dt.date(2026, 11, 26), "00000042")  # a reversal counts against the original serial
    assert services.parse_request_id("tax:13701000000:20261126:00000042:reversal:2") == (
        "13701000000", dt.date(2026, 11, 26), "00000042")  # and so does a reversal asked again after a refusal
    assert services.parse_request_id("tax:13701000000:20261126:00000042:reversal:x") == ("", None, "")
    assert services.parse_request_id("payroll:1:2") == ("", None, "")


def test_a_reversed_deduction_nets_off_at_the_operator_and_is_consistent(day):
    """The reversal (冲正) is booked under `<original key>:reversal`: its debit nets the original credit off, so a
    deduction settled, reversed and not listed by the tax system is consistent (both failed), not a discrepancy."""
    from adapters.tips.interface import Reversal
    from tax.models import DeductionState
    from tests.tax.helpers import head
    from tests.tax.reconciliation.conftest import check_lines

    reversed_ = day["dropped"]
    reply = TaxHandler().reverse_deduction(Reversal(
        head=head("1021"), tax_org_code=TAX_ORG_CODE, entrust_date=ENTRUST_DATE, cancel_no="00000001",
        ori_entrust_date=ENTRUST_DATE, ori_tra_no=reversed_.tra_no))
    assert reply.cancel_answer == "0"
    reversed_.refresh_from_db()
    assert reversed_.state == DeductionState.REVERSED
    paid = [d for name, d in day.items() if name not in ("dropped", "ours_failed", "both_failed")]
    TaxHandler().receive_check_detail(check_detail(check_lines(paid)))
    run = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now(),
                             statement_rows=services.fetch_statement(check_date=timezone.localdate()))
    result = ReconciliationResult.objects.get(run=run, tra_no=reversed_.tra_no)
    assert (result.outcome, result.operator_count, result.operator_amount_fen) == (Outcome.BOTH_FAILED, 1, 0)
    assert run.discrepancy_count == 0 and run.matched_count == 6
    assert services.check_results(run=run)[0].result == "0"
    assert not DiscrepancyCase.objects.exists()


def test_each_treasury_sends_its_own_check_and_the_day_waits_for_every_one(day):
    """Check packages are numbered per payee bank (treasury): a second treasury's 3111 with the same check order and
    package number is stored, and the day is reconciled over the latest check of every payee bank once each is
    complete."""
    import dataclasses

    from tax.reconciliation.models import CheckPackage
    from tests.tax.helpers import head
    from tests.tax.reconciliation.conftest import check_lines

    paid = [d for name, d in day.items() if name not in ("ours_failed", "both_failed")]
    first, second = check_lines(paid[:3]), check_lines(paid[3:])
    TaxHandler().receive_check_detail(check_detail(first))
    other = "011370200002"
    ack = TaxHandler().receive_check_detail(dataclasses.replace(
        check_detail(second[:2], child_pack_num=2), payee_bank_no=other, head=head("3111")))
    assert ack.result == ResultCode.SUCCESS and CheckPackage.objects.count() == 2
    statement = services.fetch_statement(check_date=timezone.localdate())
    run = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now(), statement_rows=statement)
    assert run.state == RunState.WAITING  # the second treasury's check has one package of two
    TaxHandler().receive_check_detail(dataclasses.replace(
        check_detail(second[2:], child_pack_num=2, cur_pack_no=2), payee_bank_no=other, head=head("3111")))
    run = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now(), statement_rows=statement)
    assert run.state == RunState.DONE and run.matched_count == 7 and run.discrepancy_count == 0


def test_an_own_payment_is_matched_with_the_operator_only_and_counted_apart(tax):
    """An own payment (at the counter, no agreement) never goes through the tax system's deduction messages, so its
    3111 does not list it: it is matched with the operator's statement, not made a missing_tax case."""
    from tax import services as tax_services
    from tests.tax.helpers import real_time
    from tests.tax.reconciliation.conftest import check_lines

    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=100_00)
    TaxHandler().deduct_real_time(message)
    person = tax.taxpayer(personal=True, balance_fen=2_000_00)
    tax.sign(person)  # an own payment needs the wallet's holder on record here
    own = tax_services.pay_own_tax(wallet_id=person.wallet_id, taxpayer_id=person.taxpayer_id,
                                   taxpayer_name=person.name, tax_org_code=TAX_ORG_CODE, tax_vou_no="320261100001",
                                   amount_fen=500_00, now=timezone.now())
    assert own.entrust_date == ENTRUST_DATE
    TaxHandler().receive_check_detail(check_detail(check_lines([TaxDeduction.objects.get(tra_no=message.item.tra_no)])))
    statement = services.fetch_statement(check_date=timezone.localdate())
    run = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now(), statement_rows=statement)
    assert outcomes(run) == {own.tra_no: Outcome.OWN_MATCHED}
    assert run.totals[Outcome.OWN_MATCHED] == {"count": 1, "tax_fen": 0, "ours_fen": 500_00, "operator_fen": 500_00}
    assert (run.matched_count, run.discrepancy_count, services.check_results(run=run)[0].result) == (1, 0, "0")
    assert not DiscrepancyCase.objects.exists()
    # the operator side still counts: an own payment missing from the statement is a discrepancy
    run = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now(),
                             statement_rows=[r for r in statement if r[-1] != own.tra_no])
    assert outcomes(run) == {own.tra_no: Outcome.MISSING_OPERATOR}
