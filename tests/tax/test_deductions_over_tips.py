"""Real-time deductions (3001 -> 2001) sent by the sandbox tax system over SOAP to the live service: a serial
sent again, an empty wallet, wallet limits, a frozen wallet, a revoked agreement and an agreement the service
never signed. Each checks the answer the tax system received, the balances at the sandbox operator, the
transfers and ledger entries, and the message log."""
import dataclasses

import pytest
from django.utils import timezone

from adapters.tips import messages as m
from adapters.tips.interface import ResultCode
from adapters.tips.models import TipsMessage
from tax import services
from tax.models import AgreementState, DeductionState, TaxDeduction, TreasuryEntry
from tests.tax.helpers import (
    TAX_ORG_CODE,
    new_tax_system_head,
    post_soap,
    register_over_tips,
    signed_reply,
    signed_soap,
    stored_real_time,
    tax_system_key,
)
from treasury.models import LedgerEntry, Transfer, TransferState
from treasury.services.ledger import check_ledger

pytestmark = pytest.mark.django_db(transaction=True)

DEBITED = "扣款成功 (debited)"
NOT_SIGNED = "未签订有效三方协议 (no verified and active agreement)"


def _active_over_tips(tax, tips_sandbox, payer):
    agreement = tax.sign(payer)
    reply = register_over_tips(tips_sandbox, payer, agreement.protocol_no)
    assert (reply["vc_result"], reply["reply_signature_valid"]) == ("0", True), reply
    agreement.refresh_from_db()
    assert agreement.state == AgreementState.ACTIVE
    return agreement


def _log(key: str) -> list[tuple]:
    return list(TipsMessage.objects.filter(key=key).order_by("id").values_list("direction", "msg_no", "result",
                                                                                "http_status"))


def _key(answer: dict) -> str:
    return f"{TAX_ORG_CODE}-{answer['entrust_date']}-{answer['tra_no']}"


def test_the_same_serial_again_gets_the_first_answer_and_debits_once(tax, tips_sandbox, live_server, tmp_path):
    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = _active_over_tips(tax, tips_sandbox, payer)

    # The tax system's message delivered twice (same bytes, same MsgID): the second reply is what it reads.
    tips_sandbox.admin.set_fault("duplicate", count=1)
    answer = tips_sandbox.admin.send_deduction(protocol_no=agreement.protocol_no, amount_fen=300_00)
    today = m.date_text(timezone.localdate())
    assert (answer["reply_msg_no"], answer["result"], answer["add_word"], answer["amount_fen"], answer["tax_date"],
            answer["reply_signature_valid"]) == ("2001", ResultCode.SUCCESS, DEBITED, 300_00, today, True), answer
    assert TipsMessage.objects.filter(direction="in", msg_no="3001", msg_id=answer["msg_id"]).count() == 2
    assert _log(_key(answer)) == [("in", "3001", "90000", 200), ("out", "2001", "90000", 200)] * 2

    # The same serial under a new MsgID, as the tax system resends after losing a reply: the first answer again.
    key = tax_system_key(tmp_path)
    first = stored_real_time(answer["msg_id"])
    resent = dataclasses.replace(first, head=new_tax_system_head("3001"))
    doc, reply = signed_reply(post_soap(live_server, signed_soap(m.real_time_document(message=resent, encoding="GBK"),
                                                                 key)))
    assert doc.head.msg_no == "2001" and doc.head.msg_ref == resent.head.msg_id
    assert (reply.ori_tra_no, reply.result, reply.add_word, reply.amount_fen, m.date_text(reply.tax_date)) == (
        answer["tra_no"], ResultCode.SUCCESS, DEBITED, 300_00, today)

    # The same serial for another amount: 94051, and the deduction stays as it was.
    changed = dataclasses.replace(first, head=new_tax_system_head("3001"), item=dataclasses.replace(
        first.item, amount_fen=1_00, tax_types=(dataclasses.replace(first.item.tax_types[0], amount_fen=1_00),)))
    _, reply = signed_reply(post_soap(live_server, signed_soap(m.real_time_document(message=changed), key)))
    assert (reply.ori_tra_no, reply.result, reply.add_word, reply.amount_fen) == (
        answer["tra_no"], ResultCode.DUPLICATE, "交易流水号重复且内容不同 (the serial was used for another deduction)", 1_00)

    assert tax.balance(payer.wallet_id) == 700_00
    assert tax.balance(tax.treasury_wallet.wallet_id) == 300_00
    deduction = TaxDeduction.objects.get()
    assert (deduction.tra_no, deduction.state, deduction.amount_fen, deduction.result_code) == (
        answer["tra_no"], DeductionState.SUCCEEDED, 300_00, ResultCode.SUCCESS)
    transfer = Transfer.objects.get()
    assert (transfer.state, transfer.amount_fen, transfer.pk) == (TransferState.SETTLED, 300_00, deduction.transfer_id)
    assert sorted(LedgerEntry.objects.values_list("amount_fen", flat=True)) == [-300_00, 300_00]
    assert list(TreasuryEntry.objects.values_list("amount_fen", flat=True)) == [300_00]
    assert _log(_key(answer)) == [("in", "3001", "90000", 200), ("out", "2001", "90000", 200)] * 3 + [
        ("in", "3001", "94051", 200), ("out", "2001", "94051", 200)]
    assert check_ledger().problems == []


@pytest.mark.parametrize("case, code, add_word", [
    ("empty_wallet", ResultCode.INSUFFICIENT_BALANCE,
     "钱包余额不足 (insufficient balance): 付款钱包余额不足 (insufficient balance in payer wallet)"),
    ("single_limit", ResultCode.WALLET_LIMIT,
     "超过钱包等级限额 (wallet class limit): 超过3类钱包单笔支付限额 (class 3 single payment limit ¥5,000.00)"),
    ("daily_limit", ResultCode.WALLET_LIMIT,
     "超过钱包等级限额 (wallet class limit): 超过3类钱包日累计支付限额 (class 3 daily payment limit ¥10,000.00)"),
    ("frozen_wallet", ResultCode.ACCOUNT_FROZEN,
     "钱包冻结或注销 (wallet frozen or closed): 付款钱包状态异常 (payer wallet is frozen)"),
])
def test_an_operator_refusal_reaches_the_tax_system_with_its_own_code(tax, tips_sandbox, case, code, add_word):
    paid_before = 0
    if case == "empty_wallet":
        payer, amount = tax.taxpayer(balance_fen=99_99), 100_00
    elif case == "frozen_wallet":
        payer, amount = tax.taxpayer(balance_fen=10_000_00), 100_00
    else:  # a class-3 personal wallet: at most ¥5,000 a payment and ¥10,000 a day (settings.WALLET_CLASS_LIMITS)
        payer = tax.taxpayer(personal=True, wallet_class=3, balance_fen=20_000_00)
        amount = 5_000_01 if case == "single_limit" else 2_000_01
    balance = tax.balance(payer.wallet_id)
    agreement = _active_over_tips(tax, tips_sandbox, payer)
    if case == "daily_limit":  # ¥8,000 today already, in two payments each under the single limit
        for _ in range(2):
            paid = tips_sandbox.admin.send_deduction(protocol_no=agreement.protocol_no, amount_fen=4_000_00)
            assert paid["result"] == ResultCode.SUCCESS, paid
        paid_before = 8_000_00
    if case == "frozen_wallet":  # frozen at the operator; the service's copy of the wallet still says active
        tax.ecny.admin.set_status(wallet_id=payer.wallet_id, status="frozen")

    answer = tips_sandbox.admin.send_deduction(protocol_no=agreement.protocol_no, amount_fen=amount)
    assert (answer["reply_msg_no"], answer["result"], answer["add_word"], answer["amount_fen"], answer["tax_date"],
            answer["reply_signature_valid"]) == ("2001", code, add_word, amount, "", True), answer

    assert tax.balance(payer.wallet_id) == balance - paid_before
    assert tax.balance(tax.treasury_wallet.wallet_id) == paid_before
    refused = TaxDeduction.objects.get(tra_no=answer["tra_no"])
    assert (refused.state, refused.result_code, refused.add_word, refused.tax_date) == (
        DeductionState.FAILED, code, add_word, None)
    assert refused.transfer.state == TransferState.FAILED
    assert Transfer.objects.filter(state=TransferState.SETTLED).count() == (2 if paid_before else 0)
    assert not LedgerEntry.objects.filter(transfer=refused.transfer).exists()
    assert LedgerEntry.objects.count() == (4 if paid_before else 0)
    assert TreasuryEntry.objects.filter(deduction=refused).count() == 0
    assert _log(_key(answer)) == [("in", "3001", code, 200), ("out", "2001", code, 200)]
    assert check_ledger().problems == []


@pytest.mark.parametrize("revoked_by", ["tax_staff", "tax_system_9114_delete"])
def test_a_revoked_agreement_is_24009_and_nothing_is_debited(tax, tips_sandbox, revoked_by):
    payer = tax.taxpayer(balance_fen=1_000_00)
    agreement = _active_over_tips(tax, tips_sandbox, payer)
    paid = tips_sandbox.admin.send_deduction(protocol_no=agreement.protocol_no, amount_fen=100_00)
    assert paid["result"] == ResultCode.SUCCESS, paid  # the agreement worked before it was revoked

    if revoked_by == "tax_staff":
        services.revoke_agreement(agreement_id=agreement.pk, user=tax.staff, reason="纳税人解约", now=timezone.now())
    else:
        reply = register_over_tips(tips_sandbox, payer, agreement.protocol_no, vc_sign="1")
        assert (reply["reply_msg_no"], reply["vc_result"], reply["add_word"]) == (
            "9115", "0", "协议已撤销 (agreement revoked)"), reply
    agreement.refresh_from_db()
    assert agreement.state == AgreementState.REVOKED

    answer = tips_sandbox.admin.send_deduction(protocol_no=agreement.protocol_no, amount_fen=100_00)
    assert (answer["reply_msg_no"], answer["result"], answer["add_word"], answer["tax_date"]) == (
        "2001", ResultCode.NOT_SIGNED, NOT_SIGNED, ""), answer

    assert tax.balance(payer.wallet_id) == 900_00
    assert tax.balance(tax.treasury_wallet.wallet_id) == 100_00
    refused = TaxDeduction.objects.get(tra_no=answer["tra_no"])
    assert (refused.state, refused.result_code, refused.transfer_id) == (DeductionState.FAILED, ResultCode.NOT_SIGNED,
                                                                         None)
    assert Transfer.objects.count() == 1 and LedgerEntry.objects.count() == 2
    assert _log(_key(answer)) == [("in", "3001", "24009", 200), ("out", "2001", "24009", 200)]
    assert check_ledger().problems == []


def test_an_agreement_the_service_never_signed_is_refused_at_9114_and_at_3001(tax, tips_sandbox):
    payer = tax.taxpayer(balance_fen=1_000_00)
    tax.sign(payer)  # the service knows the taxpayer and the wallet, under another agreement number
    reply = register_over_tips(tips_sandbox, payer, "P-NEVER-SIGNED-1")
    assert (reply["reply_msg_no"], reply["vc_result"], reply["add_word"], reply["result"]) == (
        "9115", "1", "无此协议 (no such agreement)", ResultCode.AGREEMENT_VERIFY_FAILED), reply

    answer = tips_sandbox.admin.send_deduction(protocol_no="P-NEVER-SIGNED-1", amount_fen=100_00)
    assert (answer["reply_msg_no"], answer["result"], answer["add_word"], answer["tax_date"]) == (
        "2001", ResultCode.NOT_SIGNED, NOT_SIGNED, ""), answer

    assert tax.balance(payer.wallet_id) == 1_000_00
    assert tax.balance(tax.treasury_wallet.wallet_id) == 0
    refused = TaxDeduction.objects.get()
    assert (refused.tra_no, refused.state, refused.result_code, refused.agreement_id, refused.transfer_id) == (
        answer["tra_no"], DeductionState.FAILED, ResultCode.NOT_SIGNED, None, None)
    assert Transfer.objects.count() == 0 and LedgerEntry.objects.count() == 0 and TreasuryEntry.objects.count() == 0
    assert _log(_key(answer)) == [("in", "3001", "24009", 200), ("out", "2001", "24009", 200)]
