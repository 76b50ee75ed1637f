"""The service's TIPS endpoint /tips/soap/: signed messages reach the handler and get signed replies; anything
malformed, hostile, oversized or badly signed is refused and never reaches it."""
import base64
import re

import pytest
from zeep import Client, Settings
from zeep.transports import Transport

from adapters.tips import messages as m
from adapters.tips import signing
from adapters.tips.models import TipsMessage
from tests.adapters.tips.conftest import TAX_NODE, batch, head, real_time, signed_request, verification
from treasury import keys

URL = "/tips/soap/"
pytestmark = pytest.mark.django_db


def post(client, body: bytes):
    return client.generic("POST", URL, body, content_type="text/xml; charset=utf-8",
                          HTTP_SOAPACTION=f'"{m.SOAP_ACTION}"')


def reply_of(response):
    assert response.status_code == 200, response.content[:500]
    signed = m.read_soap(response.content, max_bytes=10 ** 7, expected=m.SEND_RESPONSE)
    assert signing.verify_with(keys.service_public_key(), signed.document, signed.signature)
    doc = m.read_document(signed.document, max_bytes=10 ** 7)
    return doc, m.read_body(doc)


def fault_of(response) -> m.SoapFault:
    assert response.status_code == 500
    fault = m.read_soap(response.content, max_bytes=10 ** 6, expected=m.SEND_RESPONSE)
    assert isinstance(fault, m.SoapFault)
    return fault


@pytest.mark.parametrize("encoding", ["UTF-8", "GBK"])
def test_3001_reaches_the_handler_and_gets_a_signed_2001(client, tax_key, handler, encoding):
    message = real_time()
    doc, reply = reply_of(post(client, signed_request(m.real_time_document(message=message, encoding=encoding),
                                                      tax_key)))
    assert handler.calls == [("deduct_real_time", message)]
    assert doc.head.msg_no == "2001" and doc.head.msg_ref == message.head.msg_id and doc.head.des == TAX_NODE
    assert doc.encoding == encoding
    assert (reply.ori_tra_no, reply.result, reply.amount_fen) == (message.item.tra_no, "90000", message.item.amount_fen)
    rows = list(TipsMessage.objects.order_by("id").values_list("direction", "msg_no", "msg_ref", "key",
                                                                "signature_valid", "result"))
    key = f"13201000000-20260302-{message.item.tra_no}"
    assert rows == [("in", "3001", message.head.msg_id, key, True, "90000"),
                    ("out", "2001", message.head.msg_id, key, True, "90000")]


def test_9114_and_3102_get_9115_and_9121(client, tax_key, handler):
    v = verification(protocol_no="BAD")
    _, reply = reply_of(post(client, signed_request(m.verification_document(head=head("9114"), message=v), tax_key)))
    assert (reply.vc_no, reply.vc_result) == (v.vc_no, "1")
    pack = batch(4)
    doc, ack = reply_of(post(client, signed_request(m.batch_document(message=pack), tax_key)))
    assert doc.head.msg_no == "9121" and ack.result == "90000" and ack.ori_msg_id == pack.head.msg_id
    assert [name for name, _ in handler.calls] == ["verify_agreement", "receive_batch"]
    assert handler.calls[1][1] == pack


def test_9005_is_answered_without_the_handler(client, tax_key, handler):
    doc, reply = reply_of(post(client, signed_request(m.test_document(head=head("9005")), tax_key)))
    assert doc.head.msg_no == "9120" and (reply.ori_msg_no, reply.result) == ("9005", "90000")
    assert handler.calls == []


@pytest.mark.parametrize("signature", ["", "wrong", "other-key"])
def test_bad_or_missing_signature_is_answered_91005_and_nothing_processed(client, tax_key, handler, signature):
    document = m.real_time_document(message=real_time())
    if signature == "other-key":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        sig = signing.sign_with(Ed25519PrivateKey.generate(), document)
    elif signature == "wrong":
        sig = signing.sign_with(tax_key, document + b" ")
    else:
        sig = ""
    doc, reply = reply_of(post(client, m.soap_message(m.SignedDocument(document=document, signature=sig))))
    assert doc.head.msg_no == "9120" and reply.result == "91005"
    assert handler.calls == []
    assert TipsMessage.objects.get(direction="in").signature_valid is False


def test_message_to_another_node_is_92001(client, tax_key, handler):
    message = real_time()
    data = m.real_time_document(message=message).replace(b"<DES>100000000001</DES>", b"<DES>999999999999</DES>")
    _, reply = reply_of(post(client, signed_request(data, tax_key)))
    assert reply.result == "92001" and handler.calls == []


def test_reply_messages_are_not_accepted_here(client, tax_key, handler):
    data = m.generic_reply_document(head=head("9120"), ori_msg_no="2102", result="90000")
    _, reply = reply_of(post(client, signed_request(data, tax_key)))
    assert reply.result == "92001" and handler.calls == []


# ----------------------------------------------------------------- hostile and malformed input


def _with_prolog(body: bytes, prolog: str, entity_ref: str) -> bytes:
    text = body.decode()
    text = text.replace('<?xml version="1.0" encoding="UTF-8"?>\n', '<?xml version="1.0" encoding="UTF-8"?>\n' + prolog)
    return text.replace("<Document>", f"<Document>{entity_ref}", 1).encode()


def test_xxe_in_the_envelope_is_a_fault_and_the_file_is_never_read(client, tax_key, handler, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-42")
    body = _with_prolog(signed_request(m.real_time_document(message=real_time()), tax_key),
                        f'<!DOCTYPE e [<!ENTITY s SYSTEM "file://{secret}">]>\n', "&s;")
    response = post(client, body)
    fault = fault_of(response)
    assert (fault.faultcode, fault.code) == ("soap:Client", "92004") and "DOCTYPE" in fault.message
    assert b"TOP-SECRET" not in response.content and handler.calls == []


def test_xxe_inside_the_signed_document_is_a_fault(client, tax_key, handler, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-42")
    document = m.real_time_document(message=real_time()).replace(
        b"?>\n", f'?>\n<!DOCTYPE CFX [<!ENTITY s SYSTEM "file://{secret}">]>\n'.encode(), 1).replace(
        b"<Remark>", b"<Remark>&s;", 1)
    response = post(client, signed_request(document, tax_key))  # even correctly signed
    assert fault_of(response).code == "92004" and b"TOP-SECRET" not in response.content
    assert handler.calls == []


def test_billion_laughs_is_a_fault(client, tax_key, handler):
    entities = '<!ENTITY a "ha">' + "".join(f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">'
                                             for n in range(8))
    body = _with_prolog(signed_request(m.real_time_document(message=real_time()), tax_key),
                        f"<!DOCTYPE e [{entities}]>\n", "&i;")
    assert fault_of(post(client, body)).code == "92004" and handler.calls == []


def test_external_dtd_is_a_fault(client, tax_key, handler):
    body = _with_prolog(signed_request(m.real_time_document(message=real_time()), tax_key),
                        '<!DOCTYPE e SYSTEM "http://127.0.0.1:9/evil.dtd">\n', "")
    assert fault_of(post(client, body)).code == "92004" and handler.calls == []


def test_oversized_request_is_a_fault_unread(client, tax_key, handler, settings):
    settings.TIPS_MESSAGE_MAX_BYTES = 4096
    body = signed_request(m.batch_document(message=batch(50)), tax_key)
    assert len(body) > 4096
    fault = fault_of(post(client, body))
    assert fault.code == "92004" and "limit" in fault.message and handler.calls == []


@pytest.mark.parametrize("body", [b"", b"not xml", b"<a><b></a>", b'<?xml version="1.0"?><x/>'])
def test_malformed_requests_are_faults(client, tax_key, handler, body):
    assert fault_of(post(client, body)).code == "92004" and handler.calls == []


def test_a_document_that_is_not_cfx_is_a_fault(client, tax_key, handler):
    document = b'<?xml version="1.0" encoding="UTF-8"?><CFX><HEAD/></CFX>'
    assert fault_of(post(client, signed_request(document, tax_key))).code == "92004" and handler.calls == []


def test_get_without_wsdl_is_not_allowed(client):
    assert client.get(URL).status_code == 405


# ----------------------------------------------------------------- WSDL


class _DjangoTransport(Transport):
    """zeep loading documents through the Django test client (no network)."""

    def __init__(self, client):
        super().__init__()
        self._client = client

    def load(self, url):
        response = self._client.get(url.replace("http://testserver", ""))
        assert response.status_code == 200, url
        return response.content


def test_zeep_reads_the_service_wsdl_and_builds_a_send(client):
    zeep = Client("http://testserver/tips/soap/?wsdl", transport=_DjangoTransport(client),
                  settings=Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True))
    service = zeep.wsdl.services["TipsBankService"]
    port = service.ports["TipsBankPort"]
    assert port.binding_options["address"] == "http://testserver/tips/soap/"
    assert port.binding.get("Send").soapaction == m.SOAP_ACTION
    envelope = zeep.create_message(zeep.service, "Send", Document=b"<CFX/>", Signature="A" * 86 + "==")
    from lxml import etree

    signed = m.read_soap(etree.tostring(envelope), max_bytes=10 ** 6, expected=m.SEND_REQUEST)
    assert signed.document == b"<CFX/>"
    assert base64.b64encode(signed.document)


class _Failing:
    def deduct_real_time(self, message):
        raise RuntimeError("bug")


def test_a_handler_that_raises_is_a_server_fault_and_is_logged(client, tax_key, settings):
    settings.TIPS_MESSAGE_HANDLER = "tests.adapters.tips.test_endpoint._Failing"
    fault = fault_of(post(client, signed_request(m.real_time_document(message=real_time()), tax_key)))
    assert (fault.faultcode, fault.code) == ("soap:Server", "94999")
    assert TipsMessage.objects.get().error_text.startswith("handler error")


class _BadReply:
    def deduct_real_time(self, message):
        from adapters.tips.interface import DeductionResult

        return DeductionResult(ori_tax_org_code=message.tax_org_code, ori_entrust_date=message.entrust_date,
                               ori_tra_no=message.item.tra_no, tax_vou_no=message.item.tax_vou_no,
                               amount_fen=message.item.amount_fen, result="OK")  # not a 5-character code


def test_a_handler_reply_that_would_not_validate_is_a_server_fault(client, tax_key, settings):
    settings.TIPS_MESSAGE_HANDLER = "tests.adapters.tips.test_endpoint._BadReply"
    fault = fault_of(post(client, signed_request(m.real_time_document(message=real_time()), tax_key)))
    assert (fault.faultcode, fault.code) == ("soap:Server", "94999")
    assert not TipsMessage.objects.filter(direction="out").exists()


# What the schema lets through but no reader may meet: refused as a whole (92004) before the handler, never a 500
# nor a "send it again" fault the tax system would repeat for ever.


@pytest.mark.parametrize("field, signature", [("WorkDate", None), ("WorkDate", ""), ("EntrustDate", None)],
                         ids=["head-signed", "head-unsigned", "body-signed"])
def test_a_date_the_calendar_lacks_is_refused_before_the_handler(client, tax_key, handler, field, signature):
    """cfx.xsd's Date8 pattern lets 20260230 through; the document is refused as schema-invalid."""
    document = m.real_time_document(message=real_time())
    bad = re.sub(rf"<{field}>\d{{8}}</{field}>".encode(), f"<{field}>20260230</{field}>".encode(), document, count=1)
    m.parse_and_validate(bad, schema=m.CFX_XSD_PATH, max_bytes=10 ** 6)  # the XSD accepts it
    fault = fault_of(post(client, signed_request(bad, tax_key, signature=signature)))
    assert (fault.faultcode, fault.code) == ("soap:Client", "92004") and "calendar" in fault.message
    assert handler.calls == []


def test_an_encoding_a_reply_cannot_be_written_in_is_refused_before_the_handler(client, tax_key, handler):
    """TIPS documents are GBK or UTF-8: an ISO-8859-1 3001 would be debited and then left unanswered."""
    document = m.real_time_document(message=real_time(hand_org_name="ACME Ltd", tax_pay_name="ACME Ltd")).replace(
        b'encoding="UTF-8"', b'encoding="ISO-8859-1"', 1)
    for signature in (None, ""):
        fault = fault_of(post(client, signed_request(document, tax_key, signature=signature)))
        assert (fault.faultcode, fault.code) == ("soap:Client", "92004") and "ISO-8859-1" in fault.message
    assert handler.calls == []


def test_comments_are_not_read_as_elements(client, tax_key, handler):
    """Comments are legal anywhere and pass the schema; the readers, which take some elements by position, never
    see them: a 3001 with a comment first in MSG is answered, and a batch item's TraNo is the element's, not the
    comment before it."""
    message = real_time()
    document = m.real_time_document(message=message).replace(b"<MSG>", b"<MSG><!-- from the tax system --><?pi x?>", 1)
    _, reply = reply_of(post(client, signed_request(document, tax_key)))
    assert (reply.ori_tra_no, reply.amount_fen) == (message.item.tra_no, message.item.amount_fen)

    pack = batch(2)
    first = pack.items[0]
    document = m.batch_document(message=pack).replace(f"<Payment3102><TraNo>{first.tra_no}</TraNo>".encode(),
                                                      f"<Payment3102><!--99999999--><TraNo>{first.tra_no}</TraNo>".encode(), 1)
    reply_of(post(client, signed_request(document, tax_key)))
    (got,) = [message for name, message in handler.calls if name == "receive_batch"]
    assert [(i.tra_no, i.pay_op_bk_code) for i in got.items] == [(i.tra_no, i.pay_op_bk_code) for i in pack.items]


def test_a_tax_type_name_longer_than_an_entry_holds_is_refused_before_the_handler(client, tax_key, handler):
    """A deduction is entered in the treasury under its tax type's name, 60 characters at most: a longer one passed
    the schema, the payer was debited, and entering it failed on PostgreSQL (value too long), leaving the deduction
    deducting for good. Now the document is refused as a whole (92004) before anything is read."""
    document = m.real_time_document(message=real_time())
    longest = document.replace("<TaxTypeName>增值税</TaxTypeName>".encode(), f"<TaxTypeName>{'增' * 60}</TaxTypeName>".encode())
    assert longest != document
    m.read_document(longest, max_bytes=10 ** 6)  # 60 characters are a tax type name
    too_long = document.replace("<TaxTypeName>增值税</TaxTypeName>".encode(), f"<TaxTypeName>{'增' * 61}</TaxTypeName>".encode())
    fault = fault_of(post(client, signed_request(too_long, tax_key)))
    assert (fault.faultcode, fault.code) == ("soap:Client", "92004") and "TaxTypeName" in fault.message
    assert handler.calls == []
