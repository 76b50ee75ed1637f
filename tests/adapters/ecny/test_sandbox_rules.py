"""The sandbox operator's ledger rules, exercised over real HTTP through HttpOperatorClient."""
import datetime as dt
import threading

import pytest

from adapters.ecny.interface import Conditions, RefusalCode, TransferStatus
from adapters.ecny.sandbox.admin import SandboxAdminError
from tests.adapters.ecny.conftest import BUSINESS_DAY, PINNED_NOW, SHANGHAI, instruction, new_request_id


def test_transfer_settles_and_moves_money(client, sandbox, treasury_wallet, open_wallet):
    payee = open_wallet(wallet_class=2)
    result = client.transfer(instruction(payer=treasury_wallet, payee=payee, amount_fen=1_234_56, purpose_code="30101"))

    assert result.status == TransferStatus.SETTLED
    assert result.operator_txn_id and result.code == ""
    assert result.settled_at == PINNED_NOW
    assert sandbox.admin.balance(wallet_id=payee) == 1_234_56
    assert sandbox.admin.balance(wallet_id=treasury_wallet) == 1_000_000_00 - 1_234_56
    assert client.query([result.request_id]) == [result]


def test_same_request_id_twice_is_applied_once(client, sandbox, treasury_wallet, open_wallet):
    payee = open_wallet()
    ins = instruction(payer=treasury_wallet, payee=payee, amount_fen=500_00)

    first = client.transfer(ins)
    second = client.transfer(ins)

    assert second == first
    assert sandbox.admin.balance(wallet_id=payee) == 500_00


def test_same_request_id_from_many_threads_is_applied_once(sandbox, settings, treasury_wallet, open_wallet):
    from adapters.ecny.client import HttpOperatorClient

    payee = open_wallet()
    shared = HttpOperatorClient(sandbox.url, settings.ECNY_OPERATOR_API_KEY, 10, 2)
    ins = instruction(payer=treasury_wallet, payee=payee, amount_fen=100_00)
    barrier = threading.Barrier(8)
    results, errors = [], []

    def send():
        barrier.wait()
        try:
            results.append(shared.transfer_batch([ins, ins])[0])
        except Exception as exc:  # collected so a failure names itself
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shared.close()

    assert errors == []
    assert len(results) == 8 and len(set(results)) == 1
    assert results[0].status == TransferStatus.SETTLED
    assert sandbox.admin.balance(wallet_id=payee) == 100_00
    assert sandbox.admin.balance(wallet_id=treasury_wallet) == 1_000_000_00 - 100_00


def test_batch_items_are_independent_and_deduped_within_the_batch(client, sandbox, treasury_wallet, open_wallet):
    good, frozen = open_wallet(), open_wallet()
    sandbox.admin.set_status(wallet_id=frozen, status="frozen")
    repeated = instruction(payer=treasury_wallet, payee=good, amount_fen=10_00)
    batch = [repeated, instruction(payer=treasury_wallet, payee=frozen, amount_fen=10_00), repeated,
             instruction(payer=treasury_wallet, payee=good, amount_fen=20_00)]

    results = client.transfer_batch(batch)

    assert [r.request_id for r in results] == [i.request_id for i in batch]
    assert [r.status for r in results] == ["settled", "failed", "settled", "settled"]
    assert results[1].code == RefusalCode.WALLET_INACTIVE
    assert results[2] == results[0]
    assert sandbox.admin.balance(wallet_id=good) == 30_00


def test_refused_result_is_final_for_its_request_id(client, sandbox, open_wallet):
    payer, payee = open_wallet(wallet_type="WT09"), open_wallet()
    ins = instruction(payer=payer, payee=payee, amount_fen=1_00)
    assert client.transfer(ins).code == RefusalCode.INSUFFICIENT_BALANCE

    sandbox.admin.fund(wallet_id=payer, amount_fen=10_00)
    again = client.transfer(ins)

    assert again.status == TransferStatus.FAILED and again.code == RefusalCode.INSUFFICIENT_BALANCE
    assert sandbox.admin.balance(wallet_id=payee) == 0


def test_single_payment_limit_of_payer_class(client, sandbox, open_wallet):
    payer = open_wallet(wallet_class=4, balance_fen=5_000_00)  # class 4: 2,000 yuan a payment
    payee = open_wallet()

    at_limit = client.transfer(instruction(payer=payer, payee=payee, amount_fen=2_000_00))
    over = client.transfer(instruction(payer=payer, payee=payee, amount_fen=2_000_01))

    assert at_limit.status == TransferStatus.SETTLED
    assert over.status == TransferStatus.FAILED and over.code == RefusalCode.SINGLE_LIMIT_EXCEEDED
    assert "2,000.00" in over.message
    assert sandbox.admin.balance(wallet_id=payee) == 2_000_00


def test_daily_limit_counts_a_shanghai_calendar_day(client, sandbox, open_wallet):
    payer = open_wallet(wallet_class=4, balance_fen=10_000_00)  # class 4: 5,000 yuan a day
    payee = open_wallet()
    late_evening = dt.datetime(2026, 3, 2, 23, 30, tzinfo=SHANGHAI)  # 15:30 UTC, same UTC day as next morning
    sandbox.admin.set_clock(at=late_evening)
    first = [client.transfer(instruction(payer=payer, payee=payee, amount_fen=2_000_00)) for _ in range(2)]
    third = client.transfer(instruction(payer=payer, payee=payee, amount_fen=1_000_01))

    assert [r.status for r in first] == ["settled", "settled"]
    assert third.code == RefusalCode.DAILY_LIMIT_EXCEEDED

    sandbox.admin.set_clock(at=dt.datetime(2026, 3, 3, 0, 30, tzinfo=SHANGHAI))  # still 2 March in UTC
    next_day = client.transfer(instruction(payer=payer, payee=payee, amount_fen=1_000_01))
    assert next_day.status == TransferStatus.SETTLED


def test_payee_balance_cap_refused(client, sandbox, treasury_wallet, open_wallet):
    payee = open_wallet(wallet_class=4, balance_fen=9_000_00)  # class 4: cap 10,000 yuan

    over = client.transfer(instruction(payer=treasury_wallet, payee=payee, amount_fen=1_000_01))
    exact = client.transfer(instruction(payer=treasury_wallet, payee=payee, amount_fen=1_000_00))

    assert over.status == TransferStatus.FAILED and over.code == RefusalCode.BALANCE_CAP_EXCEEDED
    assert exact.status == TransferStatus.SETTLED
    assert sandbox.admin.balance(wallet_id=payee) == 10_000_00


def test_class_1_and_corporate_wallets_have_no_class_limits(client, sandbox, open_wallet):
    payer = open_wallet(wallet_class=1, balance_fen=2_000_000_00)
    payee = open_wallet(wallet_type="WT09")

    result = client.transfer(instruction(payer=payer, payee=payee, amount_fen=1_500_000_00))

    assert result.status == TransferStatus.SETTLED


def test_insufficient_balance(client, sandbox, open_wallet):
    payer, payee = open_wallet(wallet_type="WT09", balance_fen=99_99), open_wallet()

    result = client.transfer(instruction(payer=payer, payee=payee, amount_fen=100_00))

    assert result.status == TransferStatus.FAILED and result.code == RefusalCode.INSUFFICIENT_BALANCE
    assert sandbox.admin.balance(wallet_id=payer) == 99_99


@pytest.mark.parametrize("who, status", [("payer", "frozen"), ("payer", "closed"), ("payee", "frozen"),
                                         ("payee", "closed")])
def test_inactive_wallets_refused(client, sandbox, treasury_wallet, open_wallet, who, status):
    payee = open_wallet()
    sandbox.admin.set_status(wallet_id=treasury_wallet if who == "payer" else payee, status=status)

    result = client.transfer(instruction(payer=treasury_wallet, payee=payee, amount_fen=1_00))

    assert result.code == RefusalCode.WALLET_INACTIVE
    assert who in result.message and status in result.message


def test_unknown_wallets_and_invalid_instructions(client, treasury_wallet, open_wallet):
    payee = open_wallet()
    unknown = "0019999999999999"
    results = client.transfer_batch([
        instruction(payer=treasury_wallet, payee=unknown, amount_fen=1_00),
        instruction(payer=unknown, payee=payee, amount_fen=1_00),
        instruction(payer=treasury_wallet, payee=payee, amount_fen=0),
        instruction(payer=treasury_wallet, payee=treasury_wallet, amount_fen=1_00),
    ])

    assert [r.code for r in results] == [RefusalCode.WALLET_NOT_FOUND, RefusalCode.WALLET_NOT_FOUND,
                                         RefusalCode.INVALID_REQUEST, RefusalCode.INVALID_REQUEST]
    assert all(r.status == TransferStatus.FAILED and r.operator_txn_id == "" for r in results)


@pytest.mark.parametrize("conditions, purpose, code", [
    (Conditions(allowed_payees=("0010000099999999",)), "", RefusalCode.CONDITION_PAYEE_NOT_ALLOWED),
    (Conditions(payee_category="WT09"), "", RefusalCode.CONDITION_PAYEE_CATEGORY),
    (Conditions(purposes=("2080505",)), "30101", RefusalCode.CONDITION_PURPOSE),
    (Conditions(purposes=("2080505",)), "", RefusalCode.CONDITION_PURPOSE),
    (Conditions(expires_at=PINNED_NOW), "", RefusalCode.CONDITION_EXPIRED),
    (Conditions(expires_at=PINNED_NOW - dt.timedelta(days=1)), "", RefusalCode.CONDITION_EXPIRED),
])
def test_smart_contract_conditions_refused_with_their_code(client, sandbox, treasury_wallet, open_wallet,
                                                           conditions, purpose, code):
    payee = open_wallet()  # a WT01 personal wallet

    result = client.transfer(instruction(payer=treasury_wallet, payee=payee, amount_fen=1_00, purpose_code=purpose,
                                         conditions=conditions))

    assert result.status == TransferStatus.FAILED and result.code == code
    assert "smart contract" in result.message
    assert sandbox.admin.balance(wallet_id=payee) == 0


def test_smart_contract_conditions_met_settle(client, sandbox, treasury_wallet, open_wallet):
    payee = open_wallet()
    conditions = Conditions(allowed_payees=(payee,), payee_category="WT01", purposes=("30101", "30102"),
                            expires_at=PINNED_NOW + dt.timedelta(seconds=1))

    result = client.transfer(instruction(payer=treasury_wallet, payee=payee, amount_fen=1_00, purpose_code="30102",
                                         conditions=conditions))

    assert result.status == TransferStatus.SETTLED


def test_statement_lists_every_booking_of_the_business_day(client, sandbox, open_wallet):
    payer = open_wallet(wallet_type="WT09", balance_fen=1_000_00)
    payee = open_wallet()
    sandbox.admin.set_clock(at=dt.datetime(2026, 3, 2, 0, 10, tzinfo=SHANGHAI))  # 1 March in UTC
    paid = client.transfer(instruction(payer=payer, payee=payee, amount_fen=300_00))
    returned = client.transfer(instruction(payer=payer, payee=payee, amount_fen=100_00))
    sandbox.admin.return_transfer(request_id=returned.request_id, reason="收款钱包已注销 (payee wallet closed)")
    reversal = client.reverse(request_id=new_request_id(), original_request_id=paid.request_id, reason="错付")
    sandbox.admin.set_clock(at=dt.datetime(2026, 3, 3, 0, 10, tzinfo=SHANGHAI))
    client.transfer(instruction(payer=payer, payee=payee, amount_fen=1_00))  # next business day

    payer_lines = client.statement(payer, BUSINESS_DAY)
    payee_lines = client.statement(payee, BUSINESS_DAY)

    summary = [(line.kind, line.direction, line.amount_fen, line.request_id) for line in payer_lines]
    assert summary[1:] == [
        ("transfer", "debit", 300_00, paid.request_id),
        ("transfer", "debit", 100_00, returned.request_id),
        ("return", "credit", 100_00, returned.request_id),
        ("reversal", "credit", 300_00, reversal.request_id),
    ]
    # The funding happened when the wallet was opened, at the test's default pinned time: same day.
    assert summary[0][:3] == ("funding", "credit", 1_000_00)
    assert [(line.kind, line.direction) for line in payee_lines] == [
        ("transfer", "credit"), ("transfer", "credit"), ("return", "debit"), ("reversal", "debit")]
    assert all(line.counterparty_wallet == payer for line in payee_lines)
    assert payee_lines[0].operator_txn_id == paid.operator_txn_id
    assert payee_lines[0].booked_at == dt.datetime(2026, 3, 2, 0, 10, tzinfo=SHANGHAI)
    assert [line.amount_fen for line in client.statement(payee, dt.date(2026, 3, 3))] == [1_00]
    assert client.statement(payee, dt.date(2026, 3, 1)) == []


def test_reversal_brings_money_back_once(client, sandbox, treasury_wallet, open_wallet):
    payee = open_wallet()
    paid = client.transfer(instruction(payer=treasury_wallet, payee=payee, amount_fen=88_00))
    reversal_id = new_request_id()

    reversed_ = client.reverse(request_id=reversal_id, original_request_id=paid.request_id, reason="重复支付")
    again = client.reverse(request_id=reversal_id, original_request_id=paid.request_id, reason="重复支付")
    second = client.reverse(request_id=new_request_id(), original_request_id=paid.request_id, reason="again")

    assert reversed_.status == TransferStatus.SETTLED and reversed_.operator_txn_id != paid.operator_txn_id
    assert again == reversed_
    assert second.status == TransferStatus.FAILED and second.code == RefusalCode.NOT_REVERSIBLE
    assert sandbox.admin.balance(wallet_id=payee) == 0
    assert sandbox.admin.balance(wallet_id=treasury_wallet) == 1_000_000_00
    original = client.query([paid.request_id])[0]
    assert original.status == TransferStatus.REVERSED and original.message == "重复支付"
    assert original.operator_txn_id == paid.operator_txn_id


def test_reversal_of_unknown_or_failed_request_refused(client, sandbox, treasury_wallet):
    failed = client.transfer(instruction(payer=treasury_wallet, payee="0019999999999999", amount_fen=1_00))

    for original in (failed.request_id, "never-sent"):
        result = client.reverse(request_id=new_request_id(), original_request_id=original, reason="x")
        assert result.status == TransferStatus.FAILED and result.code == RefusalCode.NOT_REVERSIBLE


def test_reversal_needs_the_money_still_on_the_payee(client, sandbox, treasury_wallet, open_wallet):
    payee, elsewhere = open_wallet(wallet_type="WT09"), open_wallet()
    paid = client.transfer(instruction(payer=treasury_wallet, payee=payee, amount_fen=50_00))
    client.transfer(instruction(payer=payee, payee=elsewhere, amount_fen=40_00))

    refused_id = new_request_id()
    result = client.reverse(request_id=refused_id, original_request_id=paid.request_id, reason="x")

    assert result.code == RefusalCode.INSUFFICIENT_BALANCE
    assert client.query([paid.request_id])[0].status == TransferStatus.SETTLED
    # The refusal is final for its request id, even once the money is back; a new id is asked afresh.
    sandbox.admin.fund(wallet_id=payee, amount_fen=40_00)
    assert client.reverse(request_id=refused_id, original_request_id=paid.request_id, reason="x") == result
    assert client.reverse(request_id=new_request_id(), original_request_id=paid.request_id,
                          reason="x").status == TransferStatus.SETTLED
    assert sandbox.admin.balance(wallet_id=payee) == 0


def test_return_sends_money_back_and_query_says_returned(client, sandbox, treasury_wallet, open_wallet):
    payee = open_wallet()
    ins = instruction(payer=treasury_wallet, payee=payee, amount_fen=66_00)
    paid = client.transfer(ins)
    sandbox.admin.set_status(wallet_id=payee, status="closed")

    sandbox.admin.return_transfer(request_id=paid.request_id, reason="收款钱包已注销 (payee wallet closed)")

    now = client.query([paid.request_id])[0]
    assert now.status == TransferStatus.RETURNED and "closed" in now.message
    assert now.operator_txn_id == paid.operator_txn_id
    assert sandbox.admin.balance(wallet_id=payee) == 0
    assert sandbox.admin.balance(wallet_id=treasury_wallet) == 1_000_000_00
    # A repeated request id still gets the original reply, and nothing moves again.
    assert client.transfer(ins) == paid
    assert sandbox.admin.balance(wallet_id=treasury_wallet) == 1_000_000_00
    with pytest.raises(SandboxAdminError) as refused:
        sandbox.admin.return_transfer(request_id=paid.request_id, reason="twice")
    assert refused.value.http_status == 409
    reversal = client.reverse(request_id=new_request_id(), original_request_id=paid.request_id, reason="x")
    assert reversal.code == RefusalCode.NOT_REVERSIBLE


def test_query_unknown_request_ids(client):
    assert [r.status for r in client.query(["a", "b"])] == [TransferStatus.NOT_FOUND] * 2


def test_verify_wallets(client, sandbox, open_wallet):
    person = open_wallet(wallet_class=3, holder_name="李四")
    frozen = open_wallet(wallet_type="WT09", holder_name="某某有限公司")
    sandbox.admin.set_status(wallet_id=frozen, status="frozen")

    checks = client.verify_wallets([(person, "李四"), (person, "李 四"), (person, "王五"), (frozen, "某某有限公司"),
                                    ("0019999999999999", "李四")])

    assert [(c.exists, c.active, c.holder_name_matches) for c in checks] == [
        (True, True, True), (True, True, True), (True, True, False), (True, False, True), (False, False, False)]
    assert (checks[0].wallet_type, checks[0].wallet_class) == ("WT01", 3)
    assert (checks[3].wallet_type, checks[3].wallet_class) == ("WT09", None)


def test_admin_refuses_bad_wallets_and_funding_over_the_cap(sandbox, open_wallet):
    with pytest.raises(SandboxAdminError) as bad_id:
        sandbox.admin.open_wallet(wallet_id="12345", wallet_type="WT01", wallet_class=1, holder_name="x")
    with pytest.raises(SandboxAdminError) as no_class:
        sandbox.admin.open_wallet(wallet_id="0010000000000777", wallet_type="WT01", holder_name="x")
    capped = open_wallet(wallet_class=4)
    with pytest.raises(SandboxAdminError) as over_cap:
        sandbox.admin.fund(wallet_id=capped, amount_fen=10_000_01)

    assert (bad_id.value.http_status, no_class.value.http_status) == (400, 400)
    assert over_cap.value.code == RefusalCode.BALANCE_CAP_EXCEEDED
    assert sandbox.admin.balance(wallet_id=capped) == 0


def test_reset_forgets_everything(client, sandbox, treasury_wallet, open_wallet):
    paid = client.transfer(instruction(payer=treasury_wallet, payee=open_wallet(), amount_fen=1_00))

    sandbox.admin.reset()

    assert client.query([paid.request_id])[0].status == TransferStatus.NOT_FOUND
    with pytest.raises(SandboxAdminError):
        sandbox.admin.balance(wallet_id=treasury_wallet)
