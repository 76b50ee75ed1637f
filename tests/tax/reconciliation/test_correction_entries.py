"""A settled correcting transfer of a discrepancy case books its treasury entry (入库): positive for money
collected into the treasury, negative for money paid back out of it, under the tax types and budget level of
the deduction the case is about, dated the day it settled, once; the daily entry report and the 3139 show it,
and the re-run of the day matches."""
import dataclasses
import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from adapters.tips.interface import TaxTypeItem
from tax import entries, selectors
from tax.handlers import TaxHandler
from tax.models import TaxDeduction, TreasuryEntry
from tax.reconciliation import corrections, services
from tax.reconciliation.models import DiscrepancyCase, Outcome, ReconciliationResult
from tests import factories as f
from tests.tax.helpers import real_time
from tests.tax.reconciliation.conftest import ENTRUST_DATE, check_detail, check_lines
from treasury.access import roles
from treasury.models import Transfer
from treasury.services import transfers as transfer_services
from treasury.services.ledger import check_ledger

VAT, CIT, CITY = "增值税", "企业所得税", "城市维护建设税"


def deduct(tax, *, amount_fen: int, tax_types=None) -> TaxDeduction:
    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=amount_fen)
    if tax_types:
        message = dataclasses.replace(message, item=dataclasses.replace(message.item, tax_types=tuple(
            TaxTypeItem(project_id=project_id, tax_type_name=name, tax_start_date=dt.date(2026, 10, 1),
                        tax_end_date=dt.date(2026, 10, 31), amount_fen=amount) for project_id, name, amount in tax_types)))
    assert TaxHandler().deduct_real_time(message).result == "90000"
    return TaxDeduction.objects.get(tra_no=message.item.tra_no)


@pytest.fixture
def day(tax):
    """Three deductions of the day; the tax system holds one as 200.01 (we took 200.00: a shortfall) and one as
    250.00 (we took 300.00 of CIT 200.00 + city construction tax 100.00: an over-debit); the third matches."""
    short = deduct(tax, amount_fen=200_00)
    over = deduct(tax, amount_fen=300_00, tax_types=[("101020", CIT, 200_00), ("101030", CITY, 100_00)])
    fine = deduct(tax, amount_fen=100_00)
    lines = [dataclasses.replace(line, amount_fen={short.tra_no: 200_01, over.tra_no: 250_00}.get(line.ori_tra_no,
                                                                                                  line.amount_fen))
             for line in check_lines([short, over, fine])]
    TaxHandler().receive_check_detail(check_detail(lines))
    run = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now())
    assert dict(ReconciliationResult.objects.filter(run=run).values_list("tra_no", "outcome")) == {
        short.tra_no: Outcome.AMOUNT_MISMATCH, over.tra_no: Outcome.AMOUNT_MISMATCH}
    tax.checker = f.make_user(role=roles.TAX_STAFF, organization=tax.authority)
    return {"short": short, "over": over, "fine": fine}


def correct(tax, deduction, *, kind: str, amount_fen: int):
    case = DiscrepancyCase.objects.get(tra_no=deduction.tra_no)
    proposed = corrections.propose_correction(case_id=case.pk, user=tax.staff, kind=kind, amount_fen=amount_fen,
                                              reason="核实 (checked)", now=timezone.now())
    return corrections.approve_correction(correction_id=proposed.pk, user=tax.checker, now=timezone.now())


def report(tax) -> dict:
    return {(r["tax_type_name"], r["budget_level_code"]): (r["amount_fen"], r["central_fen"], r["local_fen"])
            for r in selectors.daily_entry_report(entry_date=timezone.localdate(), user=tax.staff)}


def entered(correction) -> list[tuple]:
    return list(TreasuryEntry.objects.filter(correction=correction).order_by("project_id").values_list(
        "entry_date", "project_id", "tax_type_name", "budget_type", "budget_level_code", "treasury_code",
        "tax_org_code", "amount_fen", "central_fen", "local_fen"))


def test_corrections_into_and_out_of_the_treasury_are_entered_and_the_rerun_matches(tax, day):
    before = report(tax)
    assert before == {(VAT, "3"): (300_00, 150_00, 150_00), (CIT, "3"): (200_00, 120_00, 80_00),
                      (CITY, "3"): (100_00, 0, 100_00)}
    short, over = day["short"], day["over"]

    collected = correct(tax, short, kind="collect", amount_fen=1)
    settled_on = timezone.localtime(Transfer.objects.get(pk=collected.transfer_id).settled_at).date()
    # into the treasury: positive, under the deduction's VAT (50/50, the central share rounded half up)
    assert entered(collected) == [(settled_on, "101010", VAT, "1", "3", short.treasury_code, short.tax_org_code,
                                   1, 1, 0)]
    returned = correct(tax, over, kind="refund", amount_fen=50_00)
    # out of the treasury: negative, apportioned over the deduction's tax types (CIT 200 : city tax 100, the fen
    # left over to the larger remainder), each split as the deduction was (CIT 60/40; city tax local at level 3)
    assert entered(returned) == [
        (settled_on, "101020", CIT, "1", "3", over.treasury_code, over.tax_org_code, -33_33, -20_00, -13_33),
        (settled_on, "101030", CITY, "1", "3", over.treasury_code, over.tax_org_code, -16_67, 0, -16_67)]
    assert report(tax) == {(VAT, "3"): (300_01, 150_01, 150_00), (CIT, "3"): (166_67, 100_00, 66_67),
                           (CITY, "3"): (83_33, 0, 83_33)}

    # the day's 3139 carries them under the corrected deductions' vouchers (the tax system did not order them)
    (detail,) = entries.entry_details(entry_date=settled_on)
    lines = {(line.exp_tax_vou_no, line.budget_subject_code, line.amount_fen) for line in detail.lines}
    assert {(short.tax_vou_no, "101010", 1), (over.tax_vou_no, "101020", -33_33),
            (over.tax_vou_no, "101030", -16_67)} <= lines
    assert detail.all_amount_fen == 600_00 + 1 - 50_00

    run = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now())
    assert not ReconciliationResult.objects.filter(run=run).exists()
    assert (run.matched_count, run.discrepancy_count, services.check_results(run=run)[0].result) == (3, 0, "0")
    assert run.totals[Outcome.MATCHED] == {"count": 3, "tax_fen": 550_01, "ours_fen": 550_01, "operator_fen": 550_01}
    assert check_ledger().problems == []


def test_a_correction_is_entered_once_however_often_its_settlement_is_told(tax, day):
    correction = correct(tax, day["short"], kind="collect", amount_fen=1)
    assert len(entered(correction)) == 1
    now = timezone.now()
    # the operator's answer applied again, the transfer core's announcement repeated, the sweep and a re-run
    assert transfer_services.refresh_transfers(transfer_ids=[correction.transfer_id], now=now)["settled"] == 0
    for _ in range(2):
        transfer_services.batch_decided.send(sender=Transfer, batch_ref=correction.stream_key, now=now)
    assert corrections.book_correction_entries(now=now) == 0
    services.reconcile(check_date=ENTRUST_DATE, now=now)
    assert len(entered(correction)) == 1
    assert report(tax)[(VAT, "3")] == (300_01, 150_01, 150_00)
    # and the database refuses a second set
    with pytest.raises(IntegrityError), transaction.atomic():
        TreasuryEntry.objects.bulk_create(corrections.correction_entries(correction, now=now))


@pytest.fixture
def unannounced():
    """The transfer core's announcement of a decided transfer is lost (a worker died after commit)."""
    receiver = dict(dispatch_uid="tax_reconciliation.book_entries_when_settled")
    assert transfer_services.batch_decided.disconnect(**receiver)
    yield
    transfer_services.batch_decided.connect(corrections.book_entries_when_settled, **receiver)


def test_a_lost_announcement_is_caught_up_by_the_sweep_and_by_the_next_run(tax, day, unannounced):
    from tax.reconciliation.tasks import book_correction_entries_task

    returned = correct(tax, day["over"], kind="refund", amount_fen=50_00)
    assert entered(returned) == [] and list(corrections.unentered_corrections()) == [returned]
    # get(disable_sync_subtasks=False): Celery's no-join-inside-a-task guard is one flag for the whole process,
    # set while the live server's thread runs an eager task for a sandbox's call.
    assert book_correction_entries_task.apply(kwargs={}).get(disable_sync_subtasks=False) == 1  # the sweep
    assert [e[-3] for e in entered(returned)] == [-33_33, -16_67]

    collected = correct(tax, day["short"], kind="collect", amount_fen=1)
    assert entered(collected) == []
    run = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now())  # enters it before comparing
    assert [e[-3] for e in entered(collected)] == [1]
    assert (run.matched_count, run.discrepancy_count) == (3, 0)
