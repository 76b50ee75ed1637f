"""Hostile and malformed requests over real HTTP to the live service's TIPS endpoint, with the tax domain behind
it: each wraps, or stands in for, a correctly signed 3001 for an active agreement. Each is refused with a SOAP
fault (or, for a bad signature, a signed 9120 with 91005), logged as refused, and nothing is processed: no
deduction, no transfer, no money moved, no file read, no URL fetched. The clean 3001 sent afterwards is debited
once, so the message under the hostility was a good one and its serial was not used up."""
import dataclasses
import http.server
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.tips import messages as m
from adapters.tips.interface import ResultCode
from adapters.tips.messagelog import body_bytes
from adapters.tips.models import TipsMessage
from adapters.tips.signing import sign_with
from tax.models import AgreementState, DeductionState, TaxDeduction
from tests.tax.helpers import (
    OPERATOR_BANK_CODE,
    new_tax_system_head,
    post_soap,
    real_time,
    register_over_tips,
    signed_reply,
    signed_soap,
    soap_fault,
    tax_system_key,
)
from treasury.models import LedgerEntry, Transfer, TransferState

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "TOP-SECRET-42"
BALANCE = 1_000_00
AMOUNT = 100_00
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


@dataclasses.dataclass
class World:
    tax: object
    payer: object
    message: object  # the clean 3001
    key: Ed25519PrivateKey  # the tax system's
    live_server: object
    secret_url: str  # file:// URL of a file only an XXE would read
    canary: "Canary"
    logged_before: int  # the message log's last id before the test's own requests

    def log(self):
        return TipsMessage.objects.filter(pk__gt=self.logged_before).order_by("id")

    @property
    def document(self) -> bytes:
        return m.real_time_document(message=self.message)

    @property
    def clean(self) -> bytes:
        return signed_soap(self.document, self.key)


class Canary:
    """A local HTTP server that records every request: an external entity or DTD resolved would show up here."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'<!ENTITY leak "LEAKED">')

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canary():
    server = Canary()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def world(tax, tips_sandbox, live_server, tmp_path, canary):
    payer = tax.taxpayer(balance_fen=BALANCE)
    agreement = tax.sign(payer)
    assert register_over_tips(tips_sandbox, payer, agreement.protocol_no)["vc_result"] == "0"
    agreement.refresh_from_db()
    assert agreement.state == AgreementState.ACTIVE
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=AMOUNT)
    message = dataclasses.replace(message, head=new_tax_system_head("3001"),
                                  treasury=dataclasses.replace(message.treasury, pay_bk_code=OPERATOR_BANK_CODE))
    return World(tax=tax, payer=payer, message=message, key=tax_system_key(tmp_path), live_server=live_server,
                 secret_url=secret.as_uri(), canary=canary,
                 logged_before=TipsMessage.objects.order_by("-id").values_list("id", flat=True).first() or 0)


def _envelope_with(world: World, prolog: str, ref: str = "") -> bytes:
    """The clean signed request with `prolog` before its root element and `ref` at the start of <Document>."""
    body = world.clean
    assert body.startswith(XML_DECLARATION)
    body = XML_DECLARATION + prolog.encode() + body[len(XML_DECLARATION):]
    return body.replace(b"<Document>", b"<Document>" + ref.encode(), 1)


def _document_with(world: World, prolog: str, ref: str = "") -> bytes:
    """A CFX document carrying `prolog` and `ref` (in HandOrgName), correctly signed by the tax system."""
    document = world.document
    assert document.startswith(XML_DECLARATION)
    document = XML_DECLARATION + prolog.encode() + document[len(XML_DECLARATION):]
    return signed_soap(document.replace(b"<HandOrgName>", b"<HandOrgName>" + ref.encode(), 1), world.key)


def _laughs(levels: int = 9) -> str:
    entities = '<!ENTITY a "ha">' + "".join(
        f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">' for n in range(levels - 1))
    return f"<!DOCTYPE e [{entities}]>\n"


DOCTYPE_REFUSED = "document type declarations (DOCTYPE, ENTITY) are not accepted"

# name -> (build the body from the world, fault code, words the fault names)
HOSTILE = {
    "xxe_file_in_envelope": (
        lambda w: _envelope_with(w, f'<!DOCTYPE e [<!ENTITY s SYSTEM "{w.secret_url}">]>\n', "&s;"),
        ResultCode.PARSE_ERROR, f"SOAP request refused (doctype_forbidden): {DOCTYPE_REFUSED}"),
    "xxe_url_in_envelope": (
        lambda w: _envelope_with(w, f'<!DOCTYPE e [<!ENTITY s SYSTEM "{w.canary.url}/xxe">]>\n', "&s;"),
        ResultCode.PARSE_ERROR, f"SOAP request refused (doctype_forbidden): {DOCTYPE_REFUSED}"),
    "xxe_parameter_entity_in_envelope": (
        lambda w: _envelope_with(w, f'<!DOCTYPE e [<!ENTITY % p SYSTEM "{w.canary.url}/p.dtd"> %p;]>\n', "&leak;"),
        ResultCode.PARSE_ERROR, f"SOAP request refused (doctype_forbidden): {DOCTYPE_REFUSED}"),
    "xxe_file_in_signed_document": (
        lambda w: _document_with(w, f'<!DOCTYPE CFX [<!ENTITY s SYSTEM "{w.secret_url}">]>\n', "&s;"),
        ResultCode.PARSE_ERROR, f"CFX document refused (doctype_forbidden): {DOCTYPE_REFUSED}"),
    "xxe_hidden_behind_a_comment": (  # a byte scan stopping at the first "<x" would miss the DOCTYPE
        lambda w: _envelope_with(w, f'<!-- <x> --><!DOCTYPE e [<!ENTITY s SYSTEM "{w.canary.url}/c">]>\n', "&s;"),
        ResultCode.PARSE_ERROR, f"SOAP request refused (doctype_forbidden): {DOCTYPE_REFUSED}"),
    "xxe_in_utf16": (
        lambda w: _envelope_with(w, f'<!DOCTYPE e [<!ENTITY s SYSTEM "{w.canary.url}/u">]>\n', "&s;").replace(
            b'encoding="UTF-8"', b'encoding="UTF-16"', 1).decode().encode("utf-16"),
        ResultCode.PARSE_ERROR, f"SOAP request refused (doctype_forbidden): {DOCTYPE_REFUSED}"),
    "billion_laughs_in_envelope": (
        lambda w: _envelope_with(w, _laughs(), "&j;"),
        ResultCode.PARSE_ERROR, f"SOAP request refused (doctype_forbidden): {DOCTYPE_REFUSED}"),
    "billion_laughs_in_signed_document": (
        lambda w: _document_with(w, _laughs(), "&j;"),
        ResultCode.PARSE_ERROR, f"CFX document refused (doctype_forbidden): {DOCTYPE_REFUSED}"),
    "internal_dtd": (
        lambda w: _envelope_with(w, "<!DOCTYPE soap:Envelope [<!ELEMENT soap:Envelope ANY>]>\n"),
        ResultCode.PARSE_ERROR, f"SOAP request refused (doctype_forbidden): {DOCTYPE_REFUSED}"),
    "external_dtd": (
        lambda w: _envelope_with(w, f'<!DOCTYPE soap:Envelope SYSTEM "{w.canary.url}/evil.dtd">\n'),
        ResultCode.PARSE_ERROR, f"SOAP request refused (doctype_forbidden): {DOCTYPE_REFUSED}"),
    "empty_body": (lambda w: b"", ResultCode.PARSE_ERROR, "SOAP request refused (malformed): empty document"),
    "not_xml": (lambda w: b"TraNo=00000001&TraAmt=100.00", ResultCode.PARSE_ERROR,
                "SOAP request refused (malformed): not well-formed XML"),
    "json": (lambda w: b'{"MsgNo": "3001"}', ResultCode.PARSE_ERROR,
             "SOAP request refused (malformed): not well-formed XML"),
    "truncated_envelope": (lambda w: w.clean[:len(w.clean) // 2], ResultCode.PARSE_ERROR,
                           "SOAP request refused (malformed): not well-formed XML"),
    "envelope_failing_its_schema": (
        lambda w: w.clean.replace(b"</Signature>", b"</Signature><Amount>100.00</Amount>", 1),
        ResultCode.PARSE_ERROR, "SOAP request refused (schema_invalid): not valid against the schema"),
    "document_not_base64": (
        lambda w: w.clean.replace(b"<Document>", b"<Document>!!", 1),
        ResultCode.PARSE_ERROR, "SOAP request refused (schema_invalid): Document is not base64"),
    "signed_document_failing_cfx_schema": (  # TraNo is 8 digits
        lambda w: signed_soap(w.document.replace(f"<TraNo>{w.message.item.tra_no}</TraNo>".encode(),
                                                 b"<TraNo>123456789</TraNo>", 1), w.key),
        ResultCode.PARSE_ERROR, "CFX document refused (schema_invalid): not valid against the schema"),
    "signed_document_not_xml": (
        lambda w: signed_soap(b"TraNo=00000001", w.key),
        ResultCode.PARSE_ERROR, "CFX document refused (malformed): not well-formed XML"),
    "msg_no_not_matching_its_body": (
        lambda w: signed_soap(w.document.replace(b"<MsgNo>3001</MsgNo>", b"<MsgNo>3102</MsgNo>", 1), w.key),
        ResultCode.UNRECOGNISED, "3102"),
}


def _assert_nothing_processed(world: World):
    assert TaxDeduction.objects.count() == 0
    assert Transfer.objects.count() == 0 and LedgerEntry.objects.count() == 0
    assert world.tax.balance(world.payer.wallet_id) == BALANCE
    assert world.tax.balance(world.tax.treasury_wallet.wallet_id) == 0
    assert world.canary.hits == []


def _assert_the_clean_message_is_then_debited_once(world: World):
    _, reply = signed_reply(post_soap(world.live_server, world.clean))
    assert (reply.ori_tra_no, reply.result, reply.amount_fen) == (world.message.item.tra_no, ResultCode.SUCCESS,
                                                                  AMOUNT)
    deduction = TaxDeduction.objects.get()
    assert (deduction.tra_no, deduction.state, deduction.amount_fen) == (world.message.item.tra_no,
                                                                         DeductionState.SUCCEEDED, AMOUNT)
    assert Transfer.objects.get().state == TransferState.SETTLED and LedgerEntry.objects.count() == 2
    assert world.tax.balance(world.payer.wallet_id) == BALANCE - AMOUNT
    assert world.tax.balance(world.tax.treasury_wallet.wallet_id) == AMOUNT


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_or_malformed_request_is_a_fault_and_nothing_is_processed(world, case):
    build, code, reason = HOSTILE[case]
    body = build(world)
    response = post_soap(world.live_server, body)

    fault = soap_fault(response)
    assert (fault.faultcode, fault.code) == ("soap:Client", code), fault
    assert reason in fault.message, fault.message
    assert SECRET.encode() not in response.content and b"LEAKED" not in response.content
    _assert_nothing_processed(world)
    (logged,) = world.log()  # the request, refused; no reply was written or signed
    assert (logged.direction, logged.msg_no, logged.msg_id, logged.result, logged.http_status,
            logged.signature_valid) == ("in", "", "", code, 500, None)
    assert logged.error_text[:500] == fault.message
    assert SECRET not in logged.error_text and SECRET.encode() not in body_bytes(logged)

    _assert_the_clean_message_is_then_debited_once(world)


def test_a_body_over_the_size_limit_is_refused_unread_and_one_at_the_limit_is_processed(world, settings):
    limit = settings.TIPS_MESSAGE_MAX_BYTES
    clean = world.clean
    assert len(clean) < limit
    oversized = clean + b" " * (limit + 1 - len(clean))  # well-formed: only its size is wrong
    response = post_soap(world.live_server, oversized)

    fault = soap_fault(response)
    assert (fault.faultcode, fault.code, fault.message) == (
        "soap:Client", ResultCode.PARSE_ERROR, f"request exceeds the limit of {limit:,} bytes")
    _assert_nothing_processed(world)
    (logged,) = world.log()
    assert (logged.direction, logged.result, logged.http_status, logged.body_size) == ("in", "92004", 500, 0)

    _, reply = signed_reply(post_soap(world.live_server, oversized[:limit]))
    assert reply.result == ResultCode.SUCCESS
    assert TaxDeduction.objects.get().state == DeductionState.SUCCEEDED
    assert world.tax.balance(world.payer.wallet_id) == BALANCE - AMOUNT


BAD_SIGNATURES = {
    "another_key": lambda w: m.soap_message(m.SignedDocument(
        document=w.document, signature=sign_with(Ed25519PrivateKey.generate(), w.document))),
    "document_changed_after_signing": lambda w: m.soap_message(m.SignedDocument(
        document=w.document.replace(b"<TraAmt>100.00</TraAmt>", b"<TraAmt>999.00</TraAmt>", 1).replace(
            b"<TaxTypeAmt>100.00</TaxTypeAmt>", b"<TaxTypeAmt>999.00</TaxTypeAmt>", 1),
        signature=sign_with(w.key, w.document))),
    "missing": lambda w: m.soap_message(m.SignedDocument(document=w.document, signature="")),
    "not_base64": lambda w: m.soap_message(m.SignedDocument(document=w.document, signature="A" * 86 + "==")),
}


@pytest.mark.parametrize("case", list(BAD_SIGNATURES))
def test_a_bad_signature_is_answered_91005_and_nothing_is_processed(world, case):
    body = BAD_SIGNATURES[case](world)
    assert body != world.clean
    doc, reply = signed_reply(post_soap(world.live_server, body))
    assert (doc.head.msg_no, doc.head.msg_ref, reply.ori_msg_no, reply.result) == (
        "9120", world.message.head.msg_id, "3001", ResultCode.SIGNATURE_INVALID)
    _assert_nothing_processed(world)
    key = f"{world.message.tax_org_code}-{m.date_text(world.message.entrust_date)}-{world.message.item.tra_no}"
    rows = list(world.log().values_list("direction", "msg_no", "key", "signature_valid",
                                                               "result", "http_status"))
    assert rows == [("in", "3001", key, False, "91005", 200), ("out", "9120", key, True, "91005", 200)]

    _assert_the_clean_message_is_then_debited_once(world)


def test_the_sandbox_signing_with_a_wrong_key_gets_91005_and_nothing_is_debited(world, tips_sandbox):
    protocol_no = world.message.item.protocol_no
    tips_sandbox.admin.set_fault("bad_signature", count=1)
    answer = tips_sandbox.admin.send_deduction(protocol_no=protocol_no, amount_fen=AMOUNT)
    assert (answer["reply_msg_no"], answer["result"], answer["ori_msg_no"], answer["reply_signature_valid"]) == (
        "9120", ResultCode.SIGNATURE_INVALID, "3001", True), answer
    _assert_nothing_processed(world)
    assert world.log().get(direction="in").signature_valid is False

    again = tips_sandbox.admin.send_deduction(protocol_no=protocol_no, amount_fen=AMOUNT)
    assert (again["reply_msg_no"], again["result"]) == ("2001", ResultCode.SUCCESS), again
    assert world.tax.balance(world.payer.wallet_id) == BALANCE - AMOUNT
