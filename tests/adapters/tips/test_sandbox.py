"""The sandbox tax system against the live service endpoint (with the recording handler), and the service's
client against the sandbox: 9114/3001/3102 in, 2102 out, signatures both ways, fault switches."""
import pytest
import requests
from zeep import Client, Settings

from adapters.tips import messages as m
from adapters.tips.client import SoapTipsClient, get_tips_client
from adapters.tips.interface import TipsFault, TipsUnavailable
from adapters.tips.models import TipsMessage
from tests.adapters.tips.conftest import batch, batch_result

pytestmark = pytest.mark.django_db(transaction=True)
CLIENT_TIMEOUT_SECONDS = 0.5


@pytest.fixture
def sandbox(tips_sandbox, handler):
    return tips_sandbox


@pytest.fixture
def agreement(sandbox):
    answer = sandbox.admin.register_agreement(tax_pay_code="91310110666007217T", tax_pay_name="上海某某有限公司",
                                              pay_acct="0010000000000001", protocol_no="P2026-000001")
    assert answer["state"] == "verified"
    return answer


@pytest.fixture
def client(sandbox, settings):
    """The service's client with a short timeout, two retries and a tiny backoff."""
    c = SoapTipsClient(url=sandbox.url, node_code=settings.TIPS_NODE_CODE, peer_node_code=settings.TIPS_PEER_NODE_CODE,
                       timeout_seconds=CLIENT_TIMEOUT_SECONDS, retries=2, max_bytes=settings.TIPS_MESSAGE_MAX_BYTES,
                       backoff_seconds=0.01)
    yield c
    c.close()


def test_zeep_reads_the_sandbox_wsdl(sandbox):
    zeep = Client(sandbox.url + "?wsdl", settings=Settings(strict=True, forbid_dtd=True, forbid_entities=True,
                                                           forbid_external=True))
    port = zeep.wsdl.services["TipsTaxService"].ports["TipsTaxPort"]
    assert port.binding_options["address"] == sandbox.url
    assert port.binding.get("Send").soapaction == m.SOAP_ACTION


def test_9114_reaches_the_handler_and_the_sandbox_gets_a_signed_9115(sandbox, handler, agreement):
    assert agreement["reply_msg_no"] == "9115" and agreement["vc_result"] == "0"
    assert agreement["reply_signature_valid"] is True
    (name, message), = handler.calls
    assert name == "verify_agreement" and message.protocol_no == "P2026-000001"
    assert message.tax_pay_name == "上海某某有限公司"  # sent GBK-encoded, read back
    rejected = sandbox.admin.register_agreement(tax_pay_code="91310110666007217T", tax_pay_name="上海某某有限公司",
                                                pay_acct="0010000000000001", protocol_no="BAD")
    assert (rejected["vc_result"], rejected["state"]) == ("1", "rejected")


def test_3001_gets_the_handlers_2001(sandbox, handler, agreement):
    answer = sandbox.admin.send_deduction(protocol_no="P2026-000001", amount_fen=1234_56)
    assert (answer["reply_msg_no"], answer["result"], answer["amount_fen"]) == ("2001", "90000", 1234_56)
    assert answer["reply_signature_valid"] is True and answer["tax_date"] == "20260302"
    name, message = handler.calls[-1]
    assert name == "deduct_real_time" and message.item.amount_fen == 1234_56
    assert message.item.tra_no == answer["tra_no"]
    handler.refuse_accounts.add("0010000000000001")
    refused = sandbox.admin.send_deduction(protocol_no="P2026-000001", amount_fen=1_00)
    assert refused["result"] == "24007" and "余额不足" in refused["add_word"]
    logged = TipsMessage.objects.filter(key=f"{answer['tax_org_code']}-{answer['entrust_date']}-{answer['tra_no']}")
    assert sorted(logged.values_list("direction", "msg_no", "result")) == [("in", "3001", "90000"),
                                                                           ("out", "2001", "90000")]


def test_3102_of_n_items_gets_the_9121(sandbox, handler, agreement):
    answer = sandbox.admin.send_package(protocol_no="P2026-000001", count=250, amount_fen=10_00)
    assert (answer["reply_msg_no"], answer["result"], answer["all_num"]) == ("9121", "90000", 250)
    name, message = handler.calls[-1]
    assert name == "receive_batch" and len(message.items) == 250 and message.all_amount_fen == 2500_00
    assert message.pack_no == answer["pack_no"]


def test_the_sandbox_sending_twice_reaches_the_handler_twice_under_one_msg_id(sandbox, handler, agreement):
    sandbox.admin.set_fault("duplicate")
    answer = sandbox.admin.send_deduction(protocol_no="P2026-000001", amount_fen=5_00)
    deductions = [msg for name, msg in handler.calls if name == "deduct_real_time"]
    assert len(deductions) == 2 and deductions[0] == deductions[1]  # the handler dedupes on TaxOrgCode+date+TraNo
    assert answer["result"] == "90000"


def test_a_badly_signed_message_from_the_sandbox_is_answered_91005(sandbox, handler, agreement):
    calls = len(handler.calls)
    sandbox.admin.set_fault("bad_signature")
    answer = sandbox.admin.send_deduction(protocol_no="P2026-000001", amount_fen=5_00)
    assert (answer["reply_msg_no"], answer["result"]) == ("9120", "91005")
    assert len(handler.calls) == calls


def test_9005_both_ways(sandbox, client):
    assert sandbox.admin.send_test(remark="ping")["result"] == "90000"
    assert client.connectivity_test().result == "90000"


# ----------------------------------------------------------------- outbound client -> sandbox


def test_client_delivers_2102_and_the_sandbox_stores_it(sandbox, client):
    result = batch_result(batch(4))
    ack = client.send_batch_result(result)
    assert ack.result == "90000"
    stored, = sandbox.admin.results()
    assert (stored["ori_pack_no"], stored["succ_num"], stored["all_amount_fen"]) == (
        result.ori_pack_no, 3, result.all_amount_fen)
    assert [line["result"] for line in stored["lines"]] == ["24007", "90000", "90000", "90000"]
    out, back = TipsMessage.objects.order_by("id")
    assert (out.direction, out.msg_no, back.direction, back.msg_no, back.msg_ref) == ("out", "2102", "in", "9120",
                                                                                      out.msg_id)
    assert back.signature_valid is True


def test_a_second_2102_for_the_same_package_is_94051_and_not_stored_twice(sandbox, client):
    result = batch_result(batch(2))
    client.send_batch_result(result)
    assert client.send_batch_result(result).result == "94051"
    assert len(sandbox.admin.results()) == 1


def test_lost_reply_is_retried_under_the_same_msg_id_without_duplicating(sandbox, client):
    sandbox.admin.set_fault("lost_reply")
    assert client.send_batch_result(batch_result(batch(2))).result == "90000"
    assert len(sandbox.admin.results()) == 1
    attempts = list(TipsMessage.objects.filter(direction="out", msg_no="2102").order_by("id"))
    assert [a.attempt for a in attempts] == [1, 2] and attempts[0].msg_id == attempts[1].msg_id
    assert attempts[0].http_status == 502
    assert sandbox.admin.deliveries(attempts[0].msg_id) == 2


def test_timeout_is_retried_and_then_unavailable(sandbox, client):
    sandbox.admin.set_fault("timeout", count=3, sleep_seconds=CLIENT_TIMEOUT_SECONDS + 0.5)
    with pytest.raises(TipsUnavailable):
        client.send_batch_result(batch_result(batch(1)))
    assert len(sandbox.admin.results()) == 1  # applied once, whatever the retries


def test_fault_is_tips_fault_not_retried(sandbox, client):
    sandbox.admin.set_fault("fault")
    with pytest.raises(TipsFault) as fault:
        client.send_batch_result(batch_result(batch(1)))
    assert fault.value.code == "INJECTED_FAULT" and sandbox.admin.results() == []
    assert TipsMessage.objects.filter(direction="out").count() == 1


def test_a_badly_signed_reply_is_tips_fault_91005(sandbox, client):
    sandbox.admin.set_fault("bad_signature")
    with pytest.raises(TipsFault) as fault:
        client.send_batch_result(batch_result(batch(1)))
    assert fault.value.code == "91005"
    assert TipsMessage.objects.get(direction="in").signature_valid is False


def test_the_sandbox_refuses_our_message_signed_with_another_key(sandbox, client):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from adapters.tips.signing import sign_with

    other = Ed25519PrivateKey.generate()
    client._sign = lambda data: (sign_with(other, data), "0" * 16)
    with pytest.raises(TipsFault) as fault:
        client.send_batch_result(batch_result(batch(1)))
    assert fault.value.code == "91005" and sandbox.admin.results() == []


def test_unreachable_tax_system_is_unavailable(settings, db):
    settings.TIPS_SYSTEM_URL = "http://127.0.0.1:9/"
    settings.TIPS_RETRIES = 0
    get_tips_client.cache_clear()
    try:
        with pytest.raises(TipsUnavailable):
            get_tips_client().send_batch_result(batch_result(batch(1)))
    finally:
        get_tips_client.cache_clear()


def test_hostile_xml_to_the_sandbox_is_a_fault(sandbox, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-42")
    body = (f'<?xml version="1.0"?>\n<!DOCTYPE e [<!ENTITY s SYSTEM "file://{secret}">]>\n'
            f'<soap:Envelope xmlns:soap="{m.SOAP_NS}"><soap:Body>&s;</soap:Body></soap:Envelope>').encode()
    response = requests.post(sandbox.url, data=body, timeout=10)
    assert response.status_code == 500 and b"TOP-SECRET" not in response.content
    assert m.read_soap(response.content, max_bytes=10 ** 6, expected=m.SEND_RESPONSE).code == "92004"
