"""Integration (PostgreSQL row locks): what the tax system or two staff members do at the same moment never
debits a taxpayer twice, stores a package twice or pays a refund twice."""
import pytest
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from adapters.tips.interface import ResultCode
from tax import services
from tax.models import DeductionPackage, DeductionState, RefundOrder, RefundOrderState, TaxDeduction
from tests import factories as f
from tests.concurrency import at_once
from tests.tax.helpers import TAX_ORG_CODE, batch, item, real_time
from tests.tax.test_refunds import order, refund_item, refunds  # noqa: F401 (the fixture)
from treasury.access import roles
from treasury.models import LedgerEntry, Transfer, TransferState
from treasury.services.ledger import check_ledger

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("needs_postgresql")]


def test_the_same_serial_at_the_same_moment_debits_once(tax):
    payer = tax.taxpayer(balance_fen=1_000_00)
    message = real_time(tax, payer=payer, protocol_no=tax.signed_and_verified(payer).protocol_no, amount_fen=300_00)
    answers = at_once(*[lambda: services.deduct_real_time(message=message, now=timezone.now())] * 3)
    # One call stores and debits; one arriving while it works is told to ask again (94999), not debited.
    assert not [a for a in answers if isinstance(a, Exception)], answers
    assert ResultCode.SUCCESS in {a.result for a in answers}
    assert {a.result for a in answers} <= {ResultCode.SUCCESS, ResultCode.TIMEOUT}
    assert services.deduct_real_time(message=message, now=timezone.now()).result == ResultCode.SUCCESS  # asked again
    assert TaxDeduction.objects.count() == 1 and Transfer.objects.count() == 1
    assert tax.balance(payer.wallet_id) == 700_00
    assert check_ledger().problems == []


def test_the_same_package_delivered_twice_at_once_is_stored_and_deducted_once(tax, tips_outbox):
    payers = [tax.taxpayer(balance_fen=1_000_00) for _ in range(5)]
    message = batch(tax, [item(payer=p, protocol_no=tax.signed_and_verified(p).protocol_no, amount_fen=10_00 + i)
                          for i, p in enumerate(payers)])
    acks = at_once(*[lambda: services.receive_batch(message=message, now=timezone.now())] * 2)
    assert [a.result for a in acks] == [ResultCode.SUCCESS] * 2  # the second gets the first one's answer
    package = DeductionPackage.objects.get()
    assert package.succ_num == 5 and TaxDeduction.objects.count() == 5
    assert Transfer.objects.filter(state=TransferState.SETTLED).count() == 5
    for payer, sent in zip(payers, message.items):
        assert tax.balance(payer.wallet_id) == 1_000_00 - sent.amount_fen
    assert len(tips_outbox.sent) == 1
    assert check_ledger().problems == []


def test_two_approvers_at_once_pay_a_refund_order_once(refunds):
    tax = refunds
    second_approver = f.make_user(role=roles.TAX_STAFF, organization=tax.authority)
    payers = [tax.taxpayer(balance_fen=0) for _ in range(3)]
    assert services.receive_refund_order(message=order([refund_item(p, amount_fen=50_00) for p in payers]),
                                         now=timezone.now()).result == ResultCode.SUCCESS
    refund_order = RefundOrder.objects.get()
    services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    outcomes = at_once(*[lambda user=user: services.approve_refund_order(order_id=refund_order.pk, user=user,
                                                                          now=timezone.now())
                         for user in (tax.approver, second_approver)])
    assert sum(isinstance(o, RefundOrder) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, TransitionNotAllowed) for o in outcomes) == 1, outcomes
    refund_order.refresh_from_db()
    assert refund_order.state == RefundOrderState.DONE
    assert Transfer.objects.count() == 3
    assert [tax.balance(p.wallet_id) for p in payers] == [50_00] * 3
    assert len(tax.outbox.sent) == 1
    assert check_ledger().problems == []



def test_the_same_voucher_paid_by_two_clicks_at_once_debits_once(tax):
    person = tax.taxpayer(personal=True, balance_fen=2_000_00)
    tax.sign(person)
    paid = at_once(*[lambda: services.pay_own_tax(
        wallet_id=person.wallet_id, taxpayer_id=person.taxpayer_id, taxpayer_name=person.name,
        tax_org_code=TAX_ORG_CODE, tax_vou_no="320261100001", amount_fen=500_00, now=timezone.now())] * 2)
    assert all(isinstance(p, TaxDeduction) for p in paid), paid
    assert paid[0].pk == paid[1].pk
    assert TaxDeduction.objects.count() == 1 and Transfer.objects.count() == 1
    assert TaxDeduction.objects.get().state == DeductionState.SUCCEEDED
    assert tax.balance(person.wallet_id) == 1_500_00
    assert check_ledger().problems == []


def test_two_sweeps_resolving_an_unknown_debit_at_once_reverse_it_once(tax, settings):
    """The operator applied a real-time debit but timed out (answered 94999); two sweeps (a beat that overlapped
    itself) resolve it at the same moment: the debit is given back once."""
    from adapters.ecny.client import get_operator_client

    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = tax.signed_and_verified(payer)
    settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 0.5
    get_operator_client.cache_clear()
    tax.ecny.admin.set_fault("timeout_after_apply", count=1, sleep_seconds=1.5)
    message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=400_00)
    assert services.deduct_real_time(message=message, now=timezone.now()).result == ResultCode.TIMEOUT
    assert tax.balance(payer.wallet_id) == 600_00  # the operator did debit
    outcomes = at_once(*[lambda: services.resolve_unknown_deductions(now=timezone.now())] * 2)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    deduction = TaxDeduction.objects.get()
    assert deduction.state == DeductionState.REVERSED and deduction.transfer.state == TransferState.REVERSED
    assert tax.balance(payer.wallet_id) == 1_000_00 and tax.balance(tax.treasury_wallet.wallet_id) == 0
    assert LedgerEntry.objects.filter(kind="reversal").count() == 2
    assert services.resolve_unknown_deductions(now=timezone.now()) == {}
    assert check_ledger().problems == []


def test_approving_and_rejecting_a_refund_order_at_once_pay_it_all_or_nothing(refunds):
    tax = refunds
    payers = [tax.taxpayer(balance_fen=0) for _ in range(2)]
    assert services.receive_refund_order(message=order([refund_item(p, amount_fen=50_00) for p in payers]),
                                         now=timezone.now()).result == ResultCode.SUCCESS
    refund_order = RefundOrder.objects.get()
    services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    outcomes = at_once(
        lambda: services.approve_refund_order(order_id=refund_order.pk, user=tax.approver, now=timezone.now()),
        lambda: services.reject_refund_order(order_id=refund_order.pk, user=tax.approver, reason="金额有误",
                                             now=timezone.now()),
    )
    assert sum(isinstance(o, RefundOrder) for o in outcomes) == 1, outcomes
    refund_order.refresh_from_db()
    balances = [tax.balance(p.wallet_id) for p in payers]
    if refund_order.state == RefundOrderState.DONE:
        assert balances == [50_00] * 2 and Transfer.objects.count() == 2
    else:
        assert balances == [0, 0] and not Transfer.objects.exists()
    assert len(tax.outbox.sent) == 1  # one answer to the tax system either way
    assert check_ledger().problems == []
