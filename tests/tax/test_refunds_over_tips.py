"""Refund orders (1104) over the real TIPS endpoint: the sandbox tax system sends a signed order to the live
service, two tax staff members review and approve it, the treasury pays each taxpayer's wallet at the sandbox
operator, a receipt is issued, and the refund result (2104) reaches the sandbox and is acknowledged."""
import pytest
from django.utils import timezone

from adapters.tips.interface import ResultCode
from adapters.tips.models import TipsMessage
from tax import services
from tax.models import Refund, RefundOrder, RefundOrderState, RefundState
from tests import factories as f
from tests.tax.helpers import TAX_ORG_CODE, TREASURY_CODE
from treasury.access import roles
from treasury.models import Transfer, TransferState
from treasury.receipts.models import Receipt
from treasury.services.ledger import check_ledger

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def funded(tax):
    tax.ecny.admin.fund(wallet_id=tax.treasury_wallet.wallet_id, amount_fen=100_000_00)
    tax.approver = f.make_user(role=roles.TAX_STAFF, organization=tax.authority)
    return tax


def _item(payer, amount_fen: int, **extra) -> dict:
    return {"tax_pay_code": payer.taxpayer_id, "tax_pay_name": payer.name, "payee_acct": payer.wallet_id,
            "amount_fen": amount_fen, **extra}


def _send(tips_sandbox, items, **kwargs) -> dict:
    return tips_sandbox.admin.send_refund_order(items=items, draw_back_tre_code=TREASURY_CODE,
                                                tax_org_code=TAX_ORG_CODE, **kwargs)


def test_a_refund_order_over_tips_is_approved_by_a_second_person_paid_and_answered(funded, tips_sandbox):
    tax = funded
    company, person = tax.taxpayer(balance_fen=0), tax.taxpayer(personal=True, balance_fen=0)
    ack = _send(tips_sandbox, [_item(company, 1_234_56), _item(person, 300_00)])
    assert (ack["reply_msg_no"], ack["result"], ack["reply_signature_valid"]) == ("9121", ResultCode.SUCCESS, True), ack
    order = RefundOrder.objects.get()
    assert (order.pack_no, order.all_num, order.all_amount_fen) == (ack["pack_no"], 2, 1_534_56)
    assert order.state == RefundOrderState.RECEIVED and Transfer.objects.count() == 0
    assert TipsMessage.objects.filter(msg_no="1104", direction=TipsMessage.Direction.INBOUND,
                                      signature_valid=True).count() == 1

    services.review_refund_order(order_id=order.pk, user=tax.staff, now=timezone.now())
    assert tips_sandbox.admin.refund_results() == []  # nothing paid or answered before the second person
    services.approve_refund_order(order_id=order.pk, user=tax.approver, now=timezone.now())

    order.refresh_from_db()
    assert order.state == RefundOrderState.DONE and order.result_acknowledged and not order.result_pending
    assert tax.balance(company.wallet_id) == 1_234_56 and tax.balance(person.wallet_id) == 300_00
    assert tax.balance(tax.treasury_wallet.wallet_id) == 100_000_00 - 1_534_56
    transfers = Transfer.objects.all()
    assert {t.state for t in transfers} == {TransferState.SETTLED}
    assert Receipt.objects.filter(transfer__in=transfers).count() == 2

    (result,) = tips_sandbox.admin.refund_results()
    assert (result["ori_pack_no"], result["result"], result["succ_num"], result["succ_amount_fen"]) == (
        ack["pack_no"], ResultCode.SUCCESS, 2, 1_534_56)
    assert [(line["ori_tra_no"], line["result"]) for line in result["lines"]] == [
        (tra_no, ResultCode.SUCCESS) for tra_no in ack["tra_nos"]]
    sent = TipsMessage.objects.get(msg_no="2104", direction=TipsMessage.Direction.OUTBOUND)
    assert sent.result == ResultCode.SUCCESS and sent.key == f"TK-{TAX_ORG_CODE}-{ack['entrust_date']}-{ack['pack_no']}"

    # the sweep does not send an acknowledged result again
    services.finish_refund_orders(now=timezone.now())
    assert len(tips_sandbox.admin.refund_results()) == 1
    assert TipsMessage.objects.filter(msg_no="2104", direction=TipsMessage.Direction.OUTBOUND).count() == 1
    assert check_ledger().problems == []


def test_the_same_refund_order_sent_again_gets_the_first_answer_and_pays_once(funded, tips_sandbox):
    tax = funded
    payer = tax.taxpayer(balance_fen=0)
    first = _send(tips_sandbox, [_item(payer, 100_00), _item(payer, 50_00)])
    again = tips_sandbox.admin.send_refund_order(resend=first["pack_no"])
    assert first["msg_id"] != again["msg_id"]
    assert (again["result"], again["add_word"]) == (first["result"], first["add_word"]) == (
        ResultCode.SUCCESS, first["add_word"])
    assert RefundOrder.objects.count() == 1 and Refund.objects.count() == 2
    order = RefundOrder.objects.get()
    services.review_refund_order(order_id=order.pk, user=tax.staff, now=timezone.now())
    services.approve_refund_order(order_id=order.pk, user=tax.approver, now=timezone.now())
    tips_sandbox.admin.send_refund_order(resend=first["pack_no"])  # after payment: still one order, paid once
    assert tax.balance(payer.wallet_id) == 150_00 and Transfer.objects.count() == 2
    assert len(tips_sandbox.admin.refund_results()) == 1


def test_a_payee_wallet_not_held_by_the_taxpayer_refuses_the_order(funded, tips_sandbox):
    tax = funded
    payer, stranger = tax.taxpayer(balance_fen=0), tax.taxpayer(balance_fen=0)
    # the payee wallet is the stranger's, the taxpayer is `payer`
    ack = _send(tips_sandbox, [_item(payer, 100_00),
                               _item(payer, 20_00, payee_acct=stranger.wallet_id, payee_name=payer.name)])
    assert ack["result"] == ResultCode.OTHER_FAILURE, ack
    assert "not held by the taxpayer" in ack["add_word"]
    unknown = _send(tips_sandbox, [_item(payer, 100_00, payee_acct=f.make_wallet_id(operator_code="300"))])
    assert unknown["result"] == ResultCode.ACCOUNT_NOT_FOUND, unknown
    assert RefundOrder.objects.count() == 0 and Transfer.objects.count() == 0
    assert tips_sandbox.admin.refund_results() == []
