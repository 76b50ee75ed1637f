"""Reversals (冲正, 1021 -> 2021) and stop payments (止付, 1123 -> 2123) over the real TIPS endpoint: the
sandbox tax system sends signed requests to the live service; money goes back only through the transfer
core, and a stopped item is never debited."""
import re

import pytest
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from adapters.tips.interface import ResultCode
from adapters.tips.models import TipsMessage
from tax import reversals, services
from tax.models import (
    DeductionPackage, DeductionState, PackageState, StopPaymentRequest, TaxDeduction, TaxReversal, TreasuryEntry,
)
from tests.clients import api_as, logged_in
from tests.tax.helpers import OPERATOR_BANK_CODE, TAX_ORG_CODE
from treasury.models import Transfer, TransferState
from treasury.services.ledger import check_ledger

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def verified(tax, tips_sandbox):
    """A taxpayer with 10,000 yuan whose agreement the sandbox verified."""
    payer = tax.taxpayer(balance_fen=10_000_00)
    agreement = tax.sign(payer)
    reply = tips_sandbox.admin.register_agreement(
        tax_pay_code=payer.taxpayer_id, tax_pay_name=payer.name, pay_acct=payer.wallet_id,
        protocol_no=agreement.protocol_no, tax_org_code=TAX_ORG_CODE, pay_op_bk_code=OPERATOR_BANK_CODE,
        pay_bk_code=OPERATOR_BANK_CODE)
    assert reply["vc_result"] == "0", reply
    return payer, agreement


def test_a_settled_deduction_is_reversed_once_through_the_transfer_core(tax, tips_sandbox, verified):
    payer, agreement = verified
    paid = tips_sandbox.admin.send_deduction(protocol_no=agreement.protocol_no, amount_fen=1_000_00)
    assert paid["result"] == ResultCode.SUCCESS and tax.balance(payer.wallet_id) == 9_000_00

    tips_sandbox.admin.set_fault("duplicate", count=1)  # the 1021 is delivered twice under one MsgID
    answer = tips_sandbox.admin.send_reversal(tra_no=paid["tra_no"], reason="重复缴款 (paid twice)")
    assert (answer["reply_msg_no"], answer["cancel_answer"], answer["result"]) == ("2021", "0", ResultCode.SUCCESS)
    assert answer["reply_signature_valid"] is True
    assert TipsMessage.objects.filter(msg_no="1021", msg_id=answer["msg_id"],
                                      direction=TipsMessage.Direction.INBOUND).count() == 2
    assert tax.balance(payer.wallet_id) == 10_000_00 and tax.balance(tax.treasury_wallet.wallet_id) == 0

    deduction = TaxDeduction.objects.get(tra_no=paid["tra_no"])
    assert deduction.state == DeductionState.REVERSED
    assert Transfer.objects.get(pk=deduction.transfer_id).state == TransferState.REVERSED
    assert TaxReversal.objects.count() == 1
    entries = TreasuryEntry.objects.filter(deduction=deduction)
    assert entries.filter(reverses=True).count() == entries.filter(reverses=False).count() == 1
    assert entries.aggregate(total=Sum("amount_fen"))["total"] == 0

    again = tips_sandbox.admin.send_reversal(tra_no=paid["tra_no"])  # another CancelNo for the same deduction
    assert (again["cancel_answer"], again["result"]) == ("0", ResultCode.SUCCESS) and "already" in again["add_word"]
    assert tax.balance(payer.wallet_id) == 10_000_00
    assert check_ledger().problems == []
    html = logged_in(tax.staff).get(reverse("tax:deduction-detail", args=[deduction.pk])).content.decode()
    # the deduction's page: reversed, its entry and the negative one, both requests, the reversal in its history
    assert 'data-state="reversed"' in html and html.count('data-reverses="1"') == 1
    assert html.count('data-answer="0"') == 2 and "重复缴款 (paid twice)" in html
    assert 'data-kind="tax.deduction.reversed"' in html
    listed = logged_in(tax.staff).get(reverse("tax:reversal-list"), {"date_from": deduction.entrust_date}).content.decode()
    # the list of reversal requests: both, answered "reversed", each leading to the deduction's page
    assert listed.count('data-answer="0"') == 2
    assert listed.count(reverse("tax:deduction-detail", args=[deduction.pk])) == 2
    assert 'data-answer' not in logged_in(tax.other_staff).get(reverse("tax:reversal-list")).content.decode()
    api_list = api_as(tax.staff).get("/api/v1/tax/reversals/", {"date_to": deduction.entrust_date}).json()
    assert [(r["deduction_id"], r["cancel_answer"]) for r in api_list["results"]] == [(deduction.pk, "0")] * 2
    assert api_as(tax.other_staff).get("/api/v1/tax/reversals/").json()["count"] == 0
    assert api_as(tax.staff).get("/api/v1/tax/reversals/", {"date_from": "x"}).status_code == 400
    body = api_as(tax.staff).get(f"/api/v1/tax/deductions/{deduction.pk}/").json()
    assert [r["cancel_answer"] for r in body["reversals"]] == ["0", "0"] and body["transfer_state"] == "reversed"
    assert sorted(e["amount_fen"] for e in body["entries"]) == [-1_000_00, 1_000_00]


def test_the_same_reversal_request_gets_the_same_answer(tax, tips_sandbox, verified):
    from adapters.tips import messages as m
    from adapters.tips.interface import Reversal

    payer, agreement = verified
    paid = tips_sandbox.admin.send_deduction(protocol_no=agreement.protocol_no, amount_fen=200_00)
    day = m.read_date(paid["entrust_date"])
    request = Reversal(head=m.new_head(msg_no=m.REVERSAL, src="100000000002", des="100000000001", work_date=day),
                       tax_org_code=TAX_ORG_CODE, entrust_date=day, cancel_no="00000077", ori_entrust_date=day,
                       ori_tra_no=paid["tra_no"])
    first = reversals.reverse_deduction(message=request, now=timezone.now())
    second = reversals.reverse_deduction(message=request, now=timezone.now())
    assert first == second and first.cancel_answer == "0"
    assert tax.balance(payer.wallet_id) == 10_000_00 and TaxReversal.objects.count() == 1
    other = TaxDeduction.objects.create(
        kind="real_time", tax_org_code=TAX_ORG_CODE, entrust_date=day, tra_no="99999999", pay_acct=payer.wallet_id,
        amount_fen=1, created_at=timezone.now(), state=DeductionState.FAILED)
    reused = reversals.reverse_deduction(message=Reversal(**{**request.__dict__, "ori_tra_no": other.tra_no}),
                                         now=timezone.now())
    assert (reused.cancel_answer, reused.result) == ("1", ResultCode.DUPLICATE)


def test_reversal_of_an_unknown_a_failed_and_an_undecided_deduction(tax, tips_sandbox, verified):
    payer, agreement = verified
    unknown = tips_sandbox.admin.send_reversal(tra_no="87654321", tax_org_code=TAX_ORG_CODE)
    assert (unknown["cancel_answer"], unknown["result"]) == ("1", ResultCode.ORIGINAL_NOT_FOUND), unknown

    refused = tips_sandbox.admin.send_deduction(protocol_no=agreement.protocol_no, amount_fen=20_000_00)
    assert refused["result"] == ResultCode.INSUFFICIENT_BALANCE
    nothing = tips_sandbox.admin.send_reversal(tra_no=refused["tra_no"])
    assert (nothing["cancel_answer"], nothing["result"]) == ("0", ResultCode.SUCCESS) and "nothing" in nothing["add_word"]

    # an outcome still unknown is not acted on: only the operator's answer decides it (send again later)
    undecided = TaxDeduction.objects.create(
        kind="real_time", tax_org_code=TAX_ORG_CODE, entrust_date=timezone.localdate(), tra_no="55555555",
        pay_acct=payer.wallet_id, amount_fen=100, created_at=timezone.now(), state=DeductionState.UNKNOWN)
    later = tips_sandbox.admin.send_reversal(tra_no=undecided.tra_no, tax_org_code=TAX_ORG_CODE,
                                             entrust_date=undecided.entrust_date.strftime("%Y%m%d"))
    assert (later["cancel_answer"], later["result"]) == ("1", ResultCode.TIMEOUT), later
    assert not TaxReversal.objects.filter(ori_tra_no=undecided.tra_no).exists()
    assert tax.balance(payer.wallet_id) == 10_000_00


def test_stop_payment_of_an_item_then_the_package_before_deduction(tax, tips_sandbox, verified, monkeypatch):
    payer, agreement = verified
    monkeypatch.setattr(services, "_enqueue_process", lambda package_id: None)  # no worker has taken it yet
    ack = tips_sandbox.admin.send_package(protocol_no=agreement.protocol_no, count=3, amount_fen=100_00)
    assert ack["result"] == ResultCode.SUCCESS
    first, *rest = ack["tra_nos"]

    one = tips_sandbox.admin.send_stop(pack_no=ack["pack_no"], tra_no=first, reason="纳税人已缴 (paid already)")
    assert (one["reply_msg_no"], one["result"], one["stop_num"], one["stop_amount_fen"], one["done_num"]) == (
        "2123", ResultCode.SUCCESS, 1, 100_00, 0), one
    whole = tips_sandbox.admin.send_stop(pack_no=ack["pack_no"])
    assert (whole["result"], whole["stop_num"], whole["done_num"]) == (ResultCode.SUCCESS, 2, 1), whole
    again = tips_sandbox.admin.send_stop(pack_no=ack["pack_no"])
    assert (again["result"], again["stop_num"]) == (ResultCode.ALREADY_STOPPED, 0)

    package = DeductionPackage.objects.get(pack_no=ack["pack_no"])
    services.process_package(package_id=package.pk, now=timezone.now())  # the worker comes: nothing to debit
    package.refresh_from_db()
    assert package.state == PackageState.DONE and Transfer.objects.filter(source_ref__contains=ack["pack_no"]).count() == 0
    assert tax.balance(payer.wallet_id) == 10_000_00
    (result,) = tips_sandbox.admin.results()
    assert (result["succ_num"], result["succ_amount_fen"]) == (0, 0)
    assert {line["result"] for line in result["lines"]} == {ResultCode.ALREADY_STOPPED}
    assert StopPaymentRequest.objects.count() == 3
    html = logged_in(tax.staff).get(reverse("tax:package-detail", args=[package.pk])).content.decode()
    # the package's page lists the three requests: the item, the rest of the package, the one that came too late
    assert re.findall(r'data-testid="stop-num">(\d+) ', html) == ["1", "2", "0"]
    assert "纳税人已缴 (paid already)" in html and html.count('data-testid="whole-package">整包<') == 2
    listed = logged_in(tax.staff).get(reverse("tax:reversal-list")).content.decode()
    assert re.findall(r'data-testid="stop-num">(\d+) ', listed) == ["0", "2", "1"]  # newest first
    assert reverse("tax:package-detail", args=[package.pk]) in listed
    stops = api_as(tax.staff).get("/api/v1/tax/stop-payments/").json()["results"]
    assert [(r["package_id"], r["stop_num"], r["done_num"], r["ori_tra_no"]) for r in stops] == [
        (package.pk, 0, 3, ""), (package.pk, 2, 1, ""), (package.pk, 1, 0, first)]


def test_stop_payment_after_deduction_reports_the_items_as_deducted(tax, tips_sandbox, verified):
    payer, agreement = verified
    ack = tips_sandbox.admin.send_package(protocol_no=agreement.protocol_no, count=2, amount_fen=100_00)
    assert tips_sandbox.admin.results()[0]["succ_num"] == 2  # Celery eager: deducted and answered already
    late = tips_sandbox.admin.send_stop(pack_no=ack["pack_no"])
    assert (late["result"], late["stop_num"], late["done_num"]) == (ResultCode.OTHER_FAILURE, 0, 2), late
    assert tax.balance(payer.wallet_id) == 10_000_00 - 200_00
    missing = tips_sandbox.admin.send_stop(pack_no="99999999")
    assert (missing["result"], missing["stop_num"]) == (ResultCode.ORIGINAL_NOT_FOUND, 0)


def test_re_running_a_day_resends_the_2111_only_when_it_changed(tax, tips_sandbox, verified):
    from io import StringIO

    from django.core.management import call_command

    from tax.reconciliation.models import ReconciliationRun

    payer, agreement = verified
    first, second = (tips_sandbox.admin.send_deduction(protocol_no=agreement.protocol_no, amount_fen=amount)
                     for amount in (100_00, 200_00))
    day = timezone.localdate()
    assert tips_sandbox.admin.send_check_detail(day)["result"] == ResultCode.SUCCESS  # reconciled, 2111 sent
    (answer,) = tips_sandbox.admin.check_results()
    assert answer["result"] == "0"
    run = ReconciliationRun.objects.get(check_date=day, tax_org_code="")
    sent_at = run.reply_sent_at
    assert sent_at is not None and run.reply_sent_text == f"{answer['ori_chk_acct_ord']} 0"

    out = StringIO()
    call_command("reconcile_tax", "--date", day.isoformat(), stdout=out)  # nothing changed: nothing sent
    run.refresh_from_db()
    assert run.reply_sent_at == sent_at and "2111 sent" not in out.getvalue()

    tips_sandbox.admin.send_reversal(tra_no=second["tra_no"])  # after the check detail: the day now differs
    call_command("reconcile_tax", "--date", day.isoformat(), stdout=out)
    run.refresh_from_db()
    assert run.reply_sent_at > sent_at and run.reply_sent_text.startswith(f"{answer['ori_chk_acct_ord']} 1 ") and "2111 sent" in out.getvalue()
    (answer,) = tips_sandbox.admin.check_results()  # the sandbox keeps the corrected answer
    assert answer["result"] == "1"
