import pytest
from django.utils import timezone

from adapters.tips.interface import ResultCode
from tax import selectors, services
from tax.handlers import TaxHandler
from tax.models import DeductionState, TaxDeduction, TreasuryEntry, UnresolvedDeduction
from tests.tax.helpers import real_time
from treasury.models import LedgerEntry, Transfer, TransferState
from treasury.services.ledger import check_ledger
from treasury.trace.models import TraceEvent


def assert_ledger_ok():
    assert check_ledger().problems == []


def test_real_time_deduction_debits_into_the_treasury_and_records_the_entry(tax):
    payer = tax.taxpayer(balance_fen=5_000_00)
    agreement = tax.signed_and_verified(payer)
    message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=1_234_56)
    result = TaxHandler().deduct_real_time(message)
    assert result.result == ResultCode.SUCCESS
    assert result.tax_date == timezone.localdate()
    assert (result.ori_tra_no, result.amount_fen) == (message.item.tra_no, 1_234_56)
    assert tax.balance(payer.wallet_id) == 5_000_00 - 1_234_56
    assert tax.balance(tax.treasury_wallet.wallet_id) == 1_234_56
    deduction = TaxDeduction.objects.get()
    assert deduction.state == DeductionState.SUCCEEDED and deduction.agreement == agreement
    assert deduction.transfer.state == TransferState.SETTLED
    entry = TreasuryEntry.objects.get()
    assert (entry.tax_type_name, entry.amount_fen, entry.central_fen, entry.local_fen) == ("增值税", 1_234_56, 617_28, 617_28)
    report = selectors.daily_entry_report(entry_date=timezone.localdate(), user=tax.staff)
    assert [(r["tax_type_name"], r["amount_fen"], r["central_fen"]) for r in report] == [("增值税", 1_234_56, 617_28)]
    assert selectors.daily_entry_report(entry_date=timezone.localdate(), user=tax.other_staff) == []
    kinds = list(TraceEvent.objects.filter(stream_key=deduction.stream_key).order_by("seq").values_list("kind", flat=True))
    assert kinds == ["tax.deduction.received", "tax.deduction.debiting", "tax.deduction.succeeded"]
    assert_ledger_ok()


def test_the_same_serial_twice_debits_once_and_answers_the_same(tax):
    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=300_00)
    first = services.deduct_real_time(message=message, now=timezone.now())
    again = services.deduct_real_time(message=message, now=timezone.now())
    assert first == again and first.result == ResultCode.SUCCESS
    assert tax.balance(payer.wallet_id) == 700_00
    assert Transfer.objects.count() == 1 and TaxDeduction.objects.count() == 1
    # The same serial for another amount is a duplicate, and nothing moves.
    other = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=1_00, tra_no=message.item.tra_no)
    assert services.deduct_real_time(message=other, now=timezone.now()).result == ResultCode.DUPLICATE
    assert tax.balance(payer.wallet_id) == 700_00
    assert_ledger_ok()


def test_a_treasury_not_registered_here_is_refused_not_credited_to_another(tax):
    """The only treasury registered here is not where money for another treasury goes."""
    from dataclasses import replace

    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=300_00)
    elsewhere = replace(message, treasury=replace(message.treasury, payee_org_code="3201000000",
                                                  payee_acct="0010000000009999"))
    answer = services.deduct_real_time(message=elsewhere, now=timezone.now())
    assert answer.result != ResultCode.SUCCESS and "国库" in answer.add_word
    assert tax.balance(payer.wallet_id) == 1_000_00 and not Transfer.objects.exists()
    # Named by its code alone (an account number not on record), the registered treasury is credited.
    fresh = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=300_00)
    by_code = replace(fresh, treasury=replace(fresh.treasury, payee_acct="0010000000009999"))
    assert services.deduct_real_time(message=by_code, now=timezone.now()).result == ResultCode.SUCCESS
    assert tax.balance(tax.treasury_wallet.wallet_id) == 300_00


def test_no_verified_active_agreement_is_24009(tax):
    payer = tax.taxpayer()
    pending = tax.sign(payer)
    result = services.deduct_real_time(
        message=real_time(tax, payer=payer, protocol_no=pending.protocol_no, amount_fen=100_00), now=timezone.now())
    assert result.result == ResultCode.NOT_SIGNED
    active = tax.signed_and_verified(tax.taxpayer())
    services.suspend_agreement(agreement_id=active.pk, user=tax.staff, reason="暂停", now=timezone.now())
    result = services.deduct_real_time(
        message=real_time(tax, payer=tax.taxpayers[-1], protocol_no=active.protocol_no, amount_fen=100_00),
        now=timezone.now())
    assert result.result == ResultCode.NOT_SIGNED
    assert Transfer.objects.count() == 0
    assert TaxDeduction.objects.filter(state=DeductionState.FAILED).count() == 2


@pytest.mark.parametrize("amount_fen", [0, -100_00])
def test_no_or_a_negative_amount_is_refused_and_nothing_kept(tax, amount_fen):
    """The schema's Amount allows 0.00 and a minus sign: such a 3001 gets a 2001 refusal, not a fault that would
    have the tax system send it again and again."""
    payer = tax.taxpayer()
    agreement = tax.signed_and_verified(payer)
    result = TaxHandler().deduct_real_time(real_time(tax, payer=payer, protocol_no=agreement.protocol_no,
                                                     amount_fen=amount_fen))
    assert (result.result, result.amount_fen) == (ResultCode.OTHER_FAILURE, amount_fen)
    assert "positive" in result.add_word
    assert not TaxDeduction.objects.exists() and Transfer.objects.count() == 0


@pytest.mark.parametrize("case, code", [
    ("poor", ResultCode.INSUFFICIENT_BALANCE),
    ("frozen", ResultCode.ACCOUNT_FROZEN),
    ("class_limit", ResultCode.WALLET_LIMIT),
])
def test_operator_refusals_map_to_tips_codes(tax, case, code):
    if case == "class_limit":
        payer = tax.taxpayer(personal=True, wallet_class=3, balance_fen=10_000_00)  # class 3: 5,000 yuan a payment
        amount = 6_000_00
    else:
        payer = tax.taxpayer(balance_fen=50_00 if case == "poor" else 10_000_00)
        amount = 100_00
    agreement = tax.signed_and_verified(payer)
    if case == "frozen":
        tax.ecny.admin.set_status(wallet_id=payer.wallet_id, status="frozen")
    before = tax.balance(payer.wallet_id)
    result = services.deduct_real_time(
        message=real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=amount), now=timezone.now())
    assert result.result == code
    assert tax.balance(payer.wallet_id) == before
    assert TaxDeduction.objects.get().state == DeductionState.FAILED
    assert TreasuryEntry.objects.count() == 0
    assert_ledger_ok()


@pytest.mark.parametrize("fault", ["timeout_after_apply", "error_after_apply"])
def test_unknown_outcome_is_94999_then_reversed_after_recovery(tax, settings, fault):
    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 0.5
    from adapters.ecny.client import get_operator_client

    get_operator_client.cache_clear()
    tax.ecny.admin.set_fault(fault, count=1, sleep_seconds=1.5)
    message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=400_00)
    result = services.deduct_real_time(message=message, now=timezone.now())
    assert result.result == ResultCode.TIMEOUT
    assert TaxDeduction.objects.get().state == DeductionState.UNKNOWN
    # Listed for the sweep, which reads that short list rather than every deduction.
    assert list(UnresolvedDeduction.objects.values_list("deduction_id", flat=True)) == [TaxDeduction.objects.get().pk]
    assert tax.balance(payer.wallet_id) == 600_00  # the operator did debit
    # Asked again meanwhile: still unknown, no second debit.
    assert services.deduct_real_time(message=message, now=timezone.now()).result == ResultCode.TIMEOUT

    counts = services.resolve_unknown_deductions(now=timezone.now())
    assert counts == {"reversed": 1}
    deduction = TaxDeduction.objects.get()
    assert deduction.state == DeductionState.REVERSED and deduction.transfer.state == TransferState.REVERSED
    assert tax.balance(payer.wallet_id) == 1_000_00
    assert tax.balance(tax.treasury_wallet.wallet_id) == 0
    assert TreasuryEntry.objects.count() == 0
    assert LedgerEntry.objects.filter(kind="reversal").count() == 2
    assert not UnresolvedDeduction.objects.exists()
    assert services.resolve_unknown_deductions(now=timezone.now()) == {}
    assert services.deduct_real_time(message=message, now=timezone.now()).result == ResultCode.TIMEOUT
    assert tax.balance(payer.wallet_id) == 1_000_00
    assert_ledger_ok()


def test_an_individual_pays_own_tax_once(tax):
    payer = tax.taxpayer(personal=True, balance_fen=2_000_00)
    tax.sign(payer)  # the wallet's holder on record, against which the typed ID is checked
    deduction = services.pay_own_tax(wallet_id=payer.wallet_id, taxpayer_id=payer.taxpayer_id,
                                     taxpayer_name=payer.name, tax_org_code="13701000000",
                                     tax_vou_no="320261100001", amount_fen=500_00, now=timezone.now())
    assert deduction.state == DeductionState.SUCCEEDED and deduction.result_code == ResultCode.SUCCESS
    again = services.pay_own_tax(wallet_id=payer.wallet_id, taxpayer_id=payer.taxpayer_id, taxpayer_name=payer.name,
                                 tax_org_code="13701000000", tax_vou_no="320261100001", amount_fen=500_00,
                                 now=timezone.now())
    assert again.pk == deduction.pk
    assert tax.balance(payer.wallet_id) == 1_500_00
    company = tax.taxpayer()
    with pytest.raises(services.TaxError) as exc:
        services.pay_own_tax(wallet_id=company.wallet_id, taxpayer_id=payer.taxpayer_id, taxpayer_name=company.name,
                             tax_org_code="13701000000", tax_vou_no="2", amount_fen=1_00, now=timezone.now())
    assert exc.value.code == "not_personal"
    assert_ledger_ok()


def test_the_call_itself_submits_the_debit_when_no_worker_runs(tax, monkeypatch):
    """The answer does not depend on Celery: with the queue dead, the deduction is still sent and answered."""
    from treasury.services import transfers as transfer_services

    monkeypatch.setattr(transfer_services, "enqueue_submission", lambda ids: None)
    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    result = services.deduct_real_time(
        message=real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=250_00), now=timezone.now())
    assert result.result == ResultCode.SUCCESS
    assert tax.balance(payer.wallet_id) == 750_00
    assert_ledger_ok()


def test_a_3001_with_the_serial_of_a_batch_item_is_a_duplicate_not_that_items_answer(tax, tips_outbox, monkeypatch):
    """A serial is the tax system's key for one deduction: a 3001 naming the serial of an item of a 3102 of the same
    day is not a repeat of a 3001. Answered with the item's state it said 94999 (outcome unknown: the tax system
    reverses after that, 1021, and the item's debit went back though its 2102 said it succeeded) and then 90000 (a
    real-time debit that never happened)."""
    from tests.tax.helpers import batch, item

    monkeypatch.setattr(services, "_enqueue_process", lambda package_id: None)
    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    message = batch(tax, [item(payer=payer, protocol_no=agreement.protocol_no, amount_fen=300_00)])
    services.receive_batch(message=message, now=timezone.now())
    same_serial = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=300_00,
                            tra_no=message.items[0].tra_no)
    assert services.deduct_real_time(message=same_serial, now=timezone.now()).result == ResultCode.DUPLICATE
    services.process_package(package_id=TaxDeduction.objects.get().package_id, now=timezone.now())
    assert TaxDeduction.objects.get().state == DeductionState.SUCCEEDED
    assert services.deduct_real_time(message=same_serial, now=timezone.now()).result == ResultCode.DUPLICATE
    assert tax.balance(payer.wallet_id) == 700_00 and Transfer.objects.count() == 1


def test_a_3001_arriving_after_a_reversal_of_its_serial_is_not_debited(tax):
    """The tax system timed out on a 3001 and reversed it (1021) before the 3001 itself reached us: the 1021 found
    no deduction. The late 3001 must not debit the taxpayer then (bank front-ends ask "already reversed?" after
    storing a 3001, before debiting): the tax system holds the serial reversed."""
    from adapters.tips.interface import Reversal
    from tax import reversals
    from tests.tax.helpers import ENTRUST_DATE, TAX_ORG_CODE, head

    payer = tax.taxpayer(balance_fen=1_000_00)
    message = real_time(tax, payer=payer, protocol_no=tax.signed_and_verified(payer).protocol_no, amount_fen=300_00)
    reply = reversals.reverse_deduction(message=Reversal(
        head=head("1021"), tax_org_code=TAX_ORG_CODE, entrust_date=ENTRUST_DATE, cancel_no="90000001",
        ori_entrust_date=ENTRUST_DATE, ori_tra_no=message.item.tra_no, cancel_reason="timeout"), now=timezone.now())
    assert reply.result == ResultCode.ORIGINAL_NOT_FOUND
    result = services.deduct_real_time(message=message, now=timezone.now())
    assert result.result != ResultCode.SUCCESS
    assert tax.balance(payer.wallet_id) == 1_000_00 and Transfer.objects.count() == 0
    assert TaxDeduction.objects.get().state == DeductionState.FAILED
    assert services.deduct_real_time(message=message, now=timezone.now()) == result  # the same answer again


def test_an_unknown_debit_that_came_back_is_failed_not_left_unknown(tax):
    """Answered 94999 (the operator debited, its reply was lost); by the time the sweep asks, the debit came back
    (returned by the operator). Nothing is debited any more: the deduction is failed, not unknown for ever."""
    from treasury.services import transfers as transfer_services

    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    tax.ecny.admin.set_fault("error_after_apply", count=1)
    message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=400_00)
    assert services.deduct_real_time(message=message, now=timezone.now()).result == ResultCode.TIMEOUT
    deduction = TaxDeduction.objects.get()
    tax.ecny.admin.return_transfer(request_id=deduction.transfer.idempotency_key, reason="退回 (returned)")
    transfer_services.recover_unconfirmed_transfers(now=timezone.now(), older_than_seconds=0)

    assert services.resolve_unknown_deductions(now=timezone.now()) == {"failed": 1}
    deduction.refresh_from_db()
    assert deduction.state == DeductionState.FAILED and deduction.transfer.state == TransferState.RETURNED
    assert not UnresolvedDeduction.objects.exists()
    assert tax.balance(payer.wallet_id) == 1_000_00
    assert TreasuryEntry.objects.count() == 0
    assert services.deduct_real_time(message=message, now=timezone.now()).result != ResultCode.SUCCESS
    assert_ledger_ok()
