"""The HTTP client against the sandbox operator with injected faults, over real HTTP.

Each fault must leave the caller able to learn the truth with `query`, and nothing may be
applied twice.
"""
import pytest
import requests

from adapters.ecny.client import HttpOperatorClient, get_operator_client
from adapters.ecny.interface import (
    OperatorProtocolError,
    OperatorRejected,
    OperatorUnavailable,
    TransferStatus,
)
from adapters.ecny.sandbox.admin import SandboxAdminError
from tests.adapters.ecny.conftest import instruction

# The sandbox withholds its reply this long on timeout_after_apply; the test client waits 0.5 s.
WITHHOLD_SECONDS = 2.0


@pytest.fixture
def payee(open_wallet):
    return open_wallet()


def test_timeout_after_apply_then_query_shows_it_applied_once(client, sandbox, treasury_wallet, payee):
    sandbox.admin.set_fault("timeout_after_apply", count=1, sleep_seconds=WITHHOLD_SECONDS)
    ins = instruction(payer=treasury_wallet, payee=payee, amount_fen=10_00)

    with pytest.raises(OperatorUnavailable) as unknown:
        client.transfer(ins)

    assert not isinstance(unknown.value, OperatorProtocolError)
    (found,) = client.query([ins.request_id])
    assert found.status == TransferStatus.SETTLED
    assert client.transfer(ins) == found  # a resend after the fact changes nothing
    assert sandbox.admin.balance(wallet_id=payee) == 10_00


def test_timeout_on_a_batch_then_query_finds_every_item(client, sandbox, treasury_wallet, payee):
    sandbox.admin.set_fault("timeout_after_apply", count=1, sleep_seconds=WITHHOLD_SECONDS)
    batch = [instruction(payer=treasury_wallet, payee=payee, amount_fen=1_00) for _ in range(50)]

    with pytest.raises(OperatorUnavailable):
        client.transfer_batch(batch)

    found = client.query([i.request_id for i in batch])
    assert {r.status for r in found} == {TransferStatus.SETTLED}
    assert len({r.operator_txn_id for r in found}) == 50
    assert sandbox.admin.balance(wallet_id=payee) == 50_00


def test_error_before_apply_applies_nothing(client, sandbox, treasury_wallet, payee):
    sandbox.admin.set_fault("error_before_apply", count=1)
    ins = instruction(payer=treasury_wallet, payee=payee, amount_fen=10_00)

    with pytest.raises(OperatorUnavailable) as failed:
        client.transfer(ins)

    assert failed.value.http_status == 500 and failed.value.code == "INJECTED_FAULT"
    assert client.query([ins.request_id])[0].status == TransferStatus.NOT_FOUND
    assert sandbox.admin.balance(wallet_id=payee) == 0
    assert client.transfer(ins).status == TransferStatus.SETTLED  # the switch was for one call only


def test_error_after_apply_is_unknown_but_applied(client, sandbox, treasury_wallet, payee):
    sandbox.admin.set_fault("error_after_apply", count=1)
    ins = instruction(payer=treasury_wallet, payee=payee, amount_fen=10_00)

    with pytest.raises(OperatorUnavailable) as failed:
        client.transfer_batch([ins])

    assert failed.value.http_status == 500
    assert client.query([ins.request_id])[0].status == TransferStatus.SETTLED
    assert sandbox.admin.balance(wallet_id=payee) == 10_00


def test_malformed_reply_raises_protocol_error_and_was_applied(client, sandbox, treasury_wallet, payee):
    sandbox.admin.set_fault("malformed_reply", count=1)
    ins = instruction(payer=treasury_wallet, payee=payee, amount_fen=10_00)

    with pytest.raises(OperatorProtocolError):
        client.transfer_batch([ins])

    assert client.query([ins.request_id])[0].status == TransferStatus.SETTLED
    assert client.transfer_batch([ins])[0].status == TransferStatus.SETTLED
    assert sandbox.admin.balance(wallet_id=payee) == 10_00


def test_duplicate_reply_gives_the_first_result(client, sandbox, settings, treasury_wallet, payee):
    sandbox.admin.set_fault("duplicate_reply", count=2)
    ins = instruction(payer=treasury_wallet, payee=payee, amount_fen=10_00)

    result = client.transfer(ins)
    raw = requests.post(sandbox.url + "/v1/transfers/batch", json={"instructions": [{
        "request_id": ins.request_id, "payer_wallet": treasury_wallet, "payee_wallet": payee, "amount_fen": 10_00}]},
        headers={"Authorization": f"Bearer {settings.ECNY_OPERATOR_API_KEY}"}, timeout=5).json()

    assert result.status == TransferStatus.SETTLED
    assert result == client.query([ins.request_id])[0]
    assert raw["results"][0]["duplicate"] is True
    assert raw["results"][0]["operator_txn_id"] == result.operator_txn_id
    assert sandbox.admin.balance(wallet_id=payee) == 10_00


def test_duplicate_reply_on_a_fresh_request_is_marked_duplicate(sandbox, settings, treasury_wallet, payee):
    sandbox.admin.set_fault("duplicate_reply", count=1)
    body = {"request_id": "fresh-1", "payer_wallet": treasury_wallet, "payee_wallet": payee, "amount_fen": 5_00}
    headers = {"Authorization": f"Bearer {settings.ECNY_OPERATOR_API_KEY}"}

    faulty = requests.post(sandbox.url + "/v1/transfers", json=body, headers=headers, timeout=5).json()["result"]
    normal = requests.post(sandbox.url + "/v1/transfers", json=body, headers=headers, timeout=5).json()["result"]

    assert faulty["duplicate"] is True and faulty["status"] == "settled"
    assert {k: v for k, v in faulty.items() if k != "duplicate"} == {k: v for k, v in normal.items() if k != "duplicate"}
    assert sandbox.admin.balance(wallet_id=payee) == 5_00


def test_reverse_under_timeout_is_applied_once(client, sandbox, treasury_wallet, payee):
    paid = client.transfer(instruction(payer=treasury_wallet, payee=payee, amount_fen=10_00))
    sandbox.admin.set_fault("timeout_after_apply", count=1, sleep_seconds=WITHHOLD_SECONDS)

    with pytest.raises(OperatorUnavailable):
        client.reverse(request_id="rev-1", original_request_id=paid.request_id, reason="x")

    assert client.query(["rev-1", paid.request_id])[1].status == TransferStatus.REVERSED
    assert client.reverse(request_id="rev-1", original_request_id=paid.request_id, reason="x").status == "settled"
    assert sandbox.admin.balance(wallet_id=payee) == 0


def test_latency_longer_than_the_read_timeout_is_unavailable(client, sandbox, treasury_wallet, payee):
    sandbox.admin.set_fault("latency_ms", value=1500)

    with pytest.raises(OperatorUnavailable):
        client.query(["anything"])

    sandbox.admin.clear_faults()
    assert client.query(["anything"])[0].status == TransferStatus.NOT_FOUND


def test_fault_count_covers_the_next_n_money_calls_only(client, sandbox, treasury_wallet, payee):
    sandbox.admin.set_fault("error_before_apply", count=2)
    outcomes = []
    for _ in range(3):
        client.query(["not-a-money-call"])  # reads do not consume money-call faults
        try:
            outcomes.append(client.transfer(instruction(payer=treasury_wallet, payee=payee, amount_fen=1_00)).status)
        except OperatorUnavailable:
            outcomes.append("unavailable")

    assert outcomes == ["unavailable", "unavailable", "settled"]
    assert sandbox.admin.balance(wallet_id=payee) == 1_00


def test_fault_probability_is_repeatable_with_a_seed(client, sandbox, treasury_wallet, payee):
    def run():
        sandbox.admin.set_fault("error_before_apply", probability=0.5, seed=7)
        pattern = []
        for _ in range(20):
            try:
                client.transfer(instruction(payer=treasury_wallet, payee=payee, amount_fen=1_00))
                pattern.append(True)
            except OperatorUnavailable:
                pattern.append(False)
        sandbox.admin.clear_faults()
        return pattern

    first, second = run(), run()

    assert first == second
    assert 0 < sum(first) < 20
    assert sandbox.admin.balance(wallet_id=payee) == 2 * sum(first) * 1_00  # both runs


def test_unknown_fault_refused(sandbox):
    with pytest.raises(SandboxAdminError) as refused:
        sandbox.admin.set_fault("meteor_strike", count=1)
    assert refused.value.http_status == 400


def test_wrong_api_key_is_rejected(sandbox, treasury_wallet, payee):
    intruder = HttpOperatorClient(sandbox.url, "wrong-key", 2, 1)

    with pytest.raises(OperatorRejected) as rejected:
        intruder.transfer(instruction(payer=treasury_wallet, payee=payee, amount_fen=1_00))

    assert rejected.value.http_status == 401
    assert sandbox.admin.balance(wallet_id=payee) == 0


def test_malformed_request_is_rejected_whole(client, sandbox, treasury_wallet, payee):
    # A request id longer than the protocol allows: a 4xx, nothing applied.
    ins = instruction(payer=treasury_wallet, payee=payee, amount_fen=1_00, request_id="x" * 65)

    with pytest.raises(OperatorRejected) as rejected:
        client.transfer_batch([instruction(payer=treasury_wallet, payee=payee, amount_fen=1_00), ins])

    assert rejected.value.http_status == 400 and "request_id" in str(rejected.value)
    assert sandbox.admin.balance(wallet_id=payee) == 0


def test_get_operator_client_follows_settings(sandbox, treasury_wallet, payee):
    # The ecny_sandbox fixture pointed ECNY_OPERATOR_URL at the sandbox and cleared the cache.
    client = get_operator_client()

    assert client is get_operator_client()
    assert client.base_url == sandbox.url
    assert client.transfer(instruction(payer=treasury_wallet, payee=payee, amount_fen=1_00)).status == "settled"


@pytest.mark.parametrize("amount", [2 ** 63, -(2 ** 63) - 1, 10 ** 30])
def test_an_amount_no_64_bit_integer_holds_is_a_bad_request_not_a_server_error(sandbox, settings, treasury_wallet,
                                                                                 payee, amount):
    """The operator's books keep 64-bit amounts: a larger number in an instruction is the caller's error (400,
    nothing applied), not the operator's failure (500, which a caller takes for an unknown outcome)."""
    body = ('{"instructions": [{"request_id": "huge-1", "payer_wallet": "%s", "payee_wallet": "%s", '
            '"amount_fen": %d}]}' % (treasury_wallet, payee, amount))
    answer = requests.post(f"{sandbox.url}/v1/transfers/batch", data=body, timeout=5,
                           headers={"Authorization": f"Bearer {settings.ECNY_OPERATOR_API_KEY}", "Content-Type": "application/json"})
    assert answer.status_code == 400 and "amount_fen" in answer.json()["error"]["message"]
    assert sandbox.admin.balance(wallet_id=payee) == 0
