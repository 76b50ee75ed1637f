"""The sandbox tax system as a WSGI application: it ACTS as the tax side of TIPS.

It sends what the tax system sends (9114 agreement verifications, 3001 real-time deductions, 3102
packages, 9005 tests) to the service's endpoint when told to through its admin endpoints, and serves
its own SOAP endpoint receiving what the service sends later (2102 batch results, 9005). It signs
everything it sends with its own Ed25519 key and verifies everything it receives with the service's
public key. Plain WSGI, no Django: it stands in for a system that is not ours.

| method and path | what |
| --- | --- |
| `POST /` | SOAP Send: a signed 2102 or 2111 (stored, deduped) or 9005; answered with a signed 9120 |
| `GET /?wsdl`, `GET /tips_soap.xsd` | its WSDL (soap:address pointing here, schema inlined) and the schema |
| `GET /health` | `{"status": "ok"}` |
| `POST /admin/agreements` | register a taxpayer and agreement, send 9114; the 9115 as JSON |
| `POST /admin/deductions` | send a 3001 for an agreement; the 2001 as JSON |
| `POST /admin/packages` | send a 3102 of N items; the 9121 as JSON |
| `POST /admin/test` | send a 9005; the 9120 as JSON |
| `GET /admin/results` | the 2102 results received |
| `POST /admin/check-detail` | send the day's 3111 built from the deductions it sent and got answered (with planted differences); the 9120 as JSON |
| `GET /admin/check-results` | the 2111 results received |
| `POST /admin/refund-orders` | send a 1104 refund order (or the same order again); the 9121 as JSON |
| `GET /admin/refund-results` | the 2104 refund results received |
| `POST /admin/reversals` | send a 1021 reversal of a deduction it sent; the 2021 as JSON |
| `POST /admin/stops` | send a 1123 stop payment of a package (or one item); the 2123 as JSON |
| `GET /admin/entry-details` | the 3139 treasury entry packages received (the latest of each) |
| `GET /admin/counts`, `GET/POST/DELETE /admin/faults`, `POST /admin/reset` | state and fault switches |

Admin endpoints need `Authorization: Bearer <api key>`; the SOAP endpoint is authenticated by signatures.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import threading

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from adapters.sandbox_common.app import (
    BadRequest,
    Routes,
    authorized,
    find_route,
    json_error,
    json_reply,
    read_json_body,
    reply,
)
from adapters.tips import messages as m
from adapters.tips.interface import (
    AgreementVerification,
    BatchDeduction,
    CheckDetail,
    CheckLine,
    DeductionItem,
    RealTimeDeduction,
    RefundItem,
    RefundOrder,
    ResultCode,
    Reversal,
    StopPayment,
    TaxTypeItem,
    TreasuryAccount,
)
from adapters.tips.sandbox.faults import (
    BAD_SIGNATURE,
    DUPLICATE,
    FAULT,
    LOST_REPLY,
    RECEIVING,
    SENDING,
    TIMEOUT,
    FaultSwitches,
    InvalidFault,
)
from adapters.tips.sandbox.ledger import SandboxConflict, TipsLedger
from adapters.tips.signing import key_id_of, sign_with, verify_with
from adapters.xml import XmlRefused

logger = logging.getLogger(__name__)

MAX_ADMIN_BODY_BYTES = 1024 * 1024
XML = "text/xml; charset=utf-8"
TAX_ORG_CODE = "13201000000"  # the sandbox's tax authority
PAY_BANK_CODE = "001000000000"  # the e-CNY operator / clearing bank in the sandbox
TREASURY = TreasuryAccount(payee_bank_no="011100000003", payee_org_code="3701000000", payee_acct="0010000000009999",
                           payee_name="国家金库济南市中心支库", pay_bk_code=PAY_BANK_CODE, handle_type="0")
_LOST_REPLY_PAGE = b"<html><body><h1>502 Bad Gateway</h1><p>upstream closed the connection</p></body></html>"


class _Fault(Exception):
    def __init__(self, code: str, message: str, *, client_error: bool = True):
        super().__init__(message)
        self.code = code
        self.client_error = client_error


class TipsSandboxApp:
    def __init__(self, *, ledger: TipsLedger, private_key: Ed25519PrivateKey, service_public_key: Ed25519PublicKey,
                 service_url: str, node_code: str, service_node_code: str, api_key: str, max_bytes: int,
                 timeout_seconds: float = 30.0, encoding: str = "GBK", stopping: threading.Event | None = None):
        self.ledger = ledger
        self.faults = FaultSwitches()
        self.service_url = service_url
        self.node_code = node_code
        self.service_node_code = service_node_code
        self.max_bytes = max_bytes
        self.encoding = encoding  # what it writes: real TIPS traffic is GBK
        self._key = private_key
        self._wrong_key = Ed25519PrivateKey.generate()  # for the bad_signature switch
        self._service_key = service_public_key
        self._api_key = api_key.encode()
        self._timeout = timeout_seconds
        self._stopping = stopping or threading.Event()
        self._session = requests.Session()
        self._admin_routes: Routes = [
            ("POST", re.compile(r"/admin/agreements"), self.admin_agreement),
            ("POST", re.compile(r"/admin/deductions"), self.admin_deduction),
            ("POST", re.compile(r"/admin/packages"), self.admin_package),
            ("POST", re.compile(r"/admin/test"), self.admin_test),
            ("GET", re.compile(r"/admin/results"), self.admin_results),
            ("POST", re.compile(r"/admin/check-detail"), self.admin_check_detail),
            ("GET", re.compile(r"/admin/check-results"), self.admin_check_results),
            ("GET", re.compile(r"/admin/received/(?P<msg_id>[0-9]{20})"), self.admin_received),
            ("GET", re.compile(r"/admin/counts"), self.admin_counts),
            ("GET", re.compile(r"/admin/faults"), self.admin_faults),
            ("POST", re.compile(r"/admin/faults"), self.admin_set_fault),
            ("DELETE", re.compile(r"/admin/faults"), self.admin_clear_faults),
            ("POST", re.compile(r"/admin/reset"), self.admin_reset),
        ]
        self._admin_routes += [
            ("POST", re.compile(r"/admin/refund-orders"), self.admin_refund_order),
            ("GET", re.compile(r"/admin/refund-results"), self.admin_refund_results),
            ("POST", re.compile(r"/admin/reversals"), self.admin_reversal),
            ("POST", re.compile(r"/admin/stops"), self.admin_stop),
            ("GET", re.compile(r"/admin/entry-details"), self.admin_entry_details),
        ]

    def close(self) -> None:
        self._session.close()

    # ----------------------------------------------------------------- WSGI
    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/health":
            return json_reply(start_response, 200, {"status": "ok"})
        if path == "/" and method == "GET" and environ.get("QUERY_STRING", "").lower() == "wsdl":
            host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT')}"
            address = f"{environ.get('wsgi.url_scheme', 'http')}://{host}/"
            return reply(start_response, 200, m.served_wsdl(m.TAX_WSDL_PATH, address=address), XML)
        if path == "/tips_soap.xsd" and method == "GET":
            return reply(start_response, 200, m.SOAP_XSD_PATH.read_bytes(), XML)
        if path.startswith("/admin/"):
            return self._admin(environ, start_response, method, path)
        if path == "/" and method == "POST":
            return self._soap(environ, start_response)
        return json_error(start_response, 405 if path == "/" else 404, "NOT_FOUND", f"{method} {path}")

    # ----------------------------------------------------------------- signing
    def _sign(self, data: bytes, *, bad: bool = False) -> m.SignedDocument:
        key = self._wrong_key if bad else self._key
        return m.SignedDocument(document=data, signature=sign_with(key, data), key_id=key_id_of(key.public_key()))

    # ----------------------------------------------------------------- SOAP (what it receives)
    def _soap(self, environ, start_response):
        try:
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                raise _Fault(ResultCode.PARSE_ERROR, "bad Content-Length")
            if length > self.max_bytes:
                raise _Fault(ResultCode.PARSE_ERROR, f"request exceeds the limit of {self.max_bytes:,} bytes")
            data = environ["wsgi.input"].read(length) if length else b""
            try:
                signed = m.read_soap(data, max_bytes=self.max_bytes, expected=m.SEND_REQUEST)
                if isinstance(signed, m.SoapFault):
                    raise _Fault(ResultCode.UNRECOGNISED, "a request cannot be a soap:Fault")
                doc = m.read_document(signed.document, max_bytes=self.max_bytes)
            except XmlRefused as exc:
                raise _Fault(ResultCode.PARSE_ERROR, f"request refused ({exc.code}): {exc}")
            except m.UnrecognisedMessage as exc:
                raise _Fault(ResultCode.UNRECOGNISED, str(exc))
            fired = self.faults.fire(RECEIVING)
            if fired is not None and fired.name == FAULT:
                raise _Fault("INJECTED_FAULT", "injected fault: nothing was applied", client_error=False)
            bad = fired is not None and fired.name == BAD_SIGNATURE
            body = self._receive(doc, signed, bad_signature=bad)
            if fired is not None and fired.name == DUPLICATE:
                body = self._receive(doc, signed, bad_signature=bad)  # delivered twice: answered from the MsgID table
            if fired is not None and fired.name == TIMEOUT:
                self._stopping.wait(fired.sleep_seconds)  # applied, but the answer comes too late
            if fired is not None and fired.name == LOST_REPLY:
                return reply(start_response, 502, _LOST_REPLY_PAGE, "text/html")
            return reply(start_response, 200, body, XML)
        except _Fault as exc:
            return reply(start_response, 500, m.fault_body(client_error=exc.client_error, code=exc.code,
                                                           message=str(exc)), XML)
        except Exception:
            logger.exception("sandbox tax system failed on a SOAP request")
            return reply(start_response, 500, m.fault_body(client_error=False, code="INTERNAL_ERROR",
                                                           message="sandbox tax system error"), XML)

    def _generic(self, doc: m.Document, result: str, note: str, *, bad_signature: bool) -> bytes:
        head = m.reply_head(doc.head, msg_no=m.GENERIC_REPLY, work_date=dt.date.today())
        data = m.generic_reply_document(head=head, ori_msg_no=doc.head.msg_no, result=result, add_word=note,
                                        encoding=self.encoding)
        return m.soap_message(self._sign(data, bad=bad_signature), response=True)

    def _receive(self, doc: m.Document, signed: m.SignedDocument, *, bad_signature: bool) -> bytes:
        head = doc.head
        if not verify_with(self._service_key, signed.document, signed.signature):
            return self._generic(doc, ResultCode.SIGNATURE_INVALID, "签名验证失败 (signature check failed)",
                                 bad_signature=bad_signature)
        if head.des != self.node_code:
            return self._generic(doc, ResultCode.UNRECOGNISED, f"DES {head.des} is not this node",
                                 bad_signature=bad_signature)
        if head.msg_no == m.CONNECTIVITY_TEST:
            return self._generic(doc, ResultCode.SUCCESS, "", bad_signature=bad_signature)
        if head.msg_no == m.CHECK_RESULT:
            answer = m.read_check_result(doc)
            row = {"ori_pay_bank_no": answer.ori_pay_bank_no, "ori_chk_date": m.date_text(answer.ori_chk_date),
                   "ori_chk_acct_ord": answer.ori_chk_acct_ord, "ori_payee_bank_no": answer.ori_payee_bank_no,
                   "result": answer.result, "add_word": answer.add_word}
            return self.ledger.store_check_result(msg_id=head.msg_id, result=row,
                                                  reply_for=lambda code, note: self._generic(
                                                      doc, code, note, bad_signature=bad_signature))
        if head.msg_no == m.REFUND_RESULT:
            return self._receive_refund_result(doc, bad_signature=bad_signature)
        if head.msg_no == m.ENTRY_DETAIL:
            return self._receive_entry_detail(doc, bad_signature=bad_signature)
        if head.msg_no in (m.SOCIAL_DECLARATION, m.SOCIAL_PAYMENT, m.SOCIAL_FLEXIBLE_PAYMENT) and getattr(self, "social", None) is not None:
            return self.social.receive(doc, bad_signature=bad_signature)  # sandbox/social.py
        if head.msg_no != m.BATCH_RESULT:
            return self._generic(doc, ResultCode.UNRECOGNISED, f"message {head.msg_no} is not accepted here",
                                 bad_signature=bad_signature)
        result = m.read_batch_result(doc)
        row = {"ori_tax_org_code": result.ori_tax_org_code, "ori_entrust_date": m.date_text(result.ori_entrust_date),
               "ori_pack_no": result.ori_pack_no, "result": result.result, "add_word": result.add_word,
               "all_num": result.all_num, "all_amount_fen": result.all_amount_fen, "succ_num": result.succ_num,
               "succ_amount_fen": result.succ_amount_fen,
               "lines": [{"ori_tra_no": i.ori_tra_no, "amount_fen": i.amount_fen, "tax_vou_no": i.tax_vou_no,
                          "tax_date": m.date_text(i.tax_date) if i.tax_date else "", "result": i.result,
                          "add_word": i.add_word} for i in result.items]}
        return self.ledger.store_result(msg_id=head.msg_id, result=row,
                                        reply_for=lambda code, note: self._generic(doc, code, note,
                                                                                   bad_signature=bad_signature))

    # ----------------------------------------------------------------- sending (what it sends)
    def _send(self, msg_no: str, build) -> tuple[m.Document, bool, object]:
        """Write, sign and send one message to the service; (reply document, reply signature valid?, reply body).
        Raises BadRequest (502) when the service gives no readable reply."""
        head = m.new_head(msg_no=msg_no, src=self.node_code, des=self.service_node_code,
                          work_date=dt.date.today())
        document = build(head)
        fired = self.faults.fire(SENDING)
        body = m.soap_message(self._sign(document, bad=fired is not None and fired.name == BAD_SIGNATURE))
        times = 2 if fired is not None and fired.name == DUPLICATE else 1
        for _ in range(times):
            try:
                response = self._session.post(self.service_url, data=body, timeout=self._timeout, headers={
                    "Content-Type": XML, "SOAPAction": f'"{m.SOAP_ACTION}"'})
            except requests.RequestException as exc:
                raise BadRequest(f"service unreachable: {exc.__class__.__name__}", code="UNAVAILABLE",
                                 http_status=502)
        try:
            signed = m.read_soap(response.content, max_bytes=self.max_bytes, expected=m.SEND_RESPONSE)
            if isinstance(signed, m.SoapFault):
                raise BadRequest(f"service answered with a SOAP fault: {signed.message}", code=signed.code,
                                 http_status=502)
            doc = m.read_document(signed.document, max_bytes=self.max_bytes)
        except (XmlRefused, m.UnrecognisedMessage) as exc:
            raise BadRequest(f"unreadable reply (HTTP {response.status_code}): {exc}", code="BAD_REPLY",
                             http_status=502)
        if doc.head.msg_ref != head.msg_id:
            raise BadRequest(f"reply refers to {doc.head.msg_ref}, sent {head.msg_id}", code="BAD_REPLY",
                             http_status=502)
        valid = verify_with(self._service_key, signed.document, signed.signature)
        return doc, valid, head

    @staticmethod
    def _reply_json(doc: m.Document, valid: bool, sent_head) -> dict:
        out = {"msg_id": sent_head.msg_id, "reply_msg_no": doc.head.msg_no, "reply_msg_id": doc.head.msg_id,
               "reply_signature_valid": valid}
        body = m.read_body(doc)
        if doc.head.msg_no == m.GENERIC_REPLY:
            out.update(result=body.result, add_word=body.add_word, ori_msg_no=body.ori_msg_no)
        elif doc.head.msg_no == m.AGREEMENT_REPLY:
            out.update(vc_no=body.vc_no, vc_result=body.vc_result, add_word=body.add_word,
                       result=ResultCode.SUCCESS if body.vc_result == "0" else ResultCode.AGREEMENT_VERIFY_FAILED)
        elif doc.head.msg_no == m.REAL_TIME_REPLY:
            out.update(ori_tra_no=body.ori_tra_no, tax_vou_no=body.tax_vou_no, amount_fen=body.amount_fen,
                       result=body.result, add_word=body.add_word,
                       tax_date=m.date_text(body.tax_date) if body.tax_date else "")
        elif doc.head.msg_no == m.BATCH_ACK:
            out.update(result=body.result, add_word=body.add_word)
        elif doc.head.msg_no == m.REVERSAL_REPLY:
            out.update(cancel_answer=body.cancel_answer, result=body.result, add_word=body.add_word)
        elif doc.head.msg_no == m.STOP_PAYMENT_REPLY:
            out.update(stop_num=body.stop_num, stop_amount_fen=body.stop_amount_fen, done_num=body.done_num,
                       result=body.result, add_word=body.add_word)
        return out

    def _agreement(self, protocol_no: str) -> dict:
        agreement = self.ledger.agreement(str(protocol_no or ""))
        if agreement is None:
            raise BadRequest(f"no agreement {protocol_no!r}; register it first", code="NOT_FOUND", http_status=404)
        return agreement

    # ----------------------------------------------------------------- admin (JSON)
    def _admin(self, environ, start_response, method: str, path: str):
        try:
            if not authorized(environ, self._api_key):
                raise BadRequest("missing or wrong api key", code="UNAUTHORIZED", http_status=401)
            handler, params = find_route(self._admin_routes, method, path)
            body = (read_json_body(environ, max_bytes=MAX_ADMIN_BODY_BYTES, too_large_status=400)
                    if method in ("POST", "DELETE") else {})
            status, payload = handler(body, **params)
            return json_reply(start_response, status, payload)
        except (BadRequest, SandboxConflict) as exc:
            return json_error(start_response, exc.http_status, exc.code, str(exc))
        except (InvalidFault, ValueError, KeyError, TypeError) as exc:
            return json_error(start_response, 400, "BAD_REQUEST", str(exc))
        except Exception:
            logger.exception("sandbox tax system failed on %s %s", method, path)
            return json_error(start_response, 500, "INTERNAL_ERROR", "sandbox error")

    def admin_agreement(self, body):
        """Register a taxpayer and agreement and send 9114 (vc_sign "0" verify, "1" delete)."""
        agreement = {"tax_org_code": str(body.get("tax_org_code") or TAX_ORG_CODE),
                     "tax_pay_code": str(body["tax_pay_code"]), "tax_pay_name": str(body["tax_pay_name"]),
                     "pay_op_bk_code": str(body.get("pay_op_bk_code") or PAY_BANK_CODE),
                     "pay_bk_code": str(body.get("pay_bk_code") or PAY_BANK_CODE), "pay_acct": str(body["pay_acct"]),
                     "hand_org_name": str(body.get("hand_org_name") or body["tax_pay_name"]),
                     "protocol_no": str(body["protocol_no"]), "vc_no": self.ledger.next_number("vc_no")}
        self.ledger.register_agreement(agreement)
        message = AgreementVerification(
            send_org_code=agreement["tax_org_code"], entrust_date=dt.date.today(), vc_no=agreement["vc_no"],
            vc_sign=str(body.get("vc_sign") or "0"), tax_org_code=agreement["tax_org_code"],
            tax_pay_code=agreement["tax_pay_code"], tax_pay_name=agreement["tax_pay_name"],
            pay_op_bk_code=agreement["pay_op_bk_code"], pay_bk_code=agreement["pay_bk_code"],
            pay_acct=agreement["pay_acct"], hand_org_name=agreement["hand_org_name"],
            protocol_no=agreement["protocol_no"])
        doc, valid, head = self._send(m.AGREEMENT_VERIFY, lambda h: m.verification_document(
            head=h, message=message, encoding=self.encoding))
        out = self._reply_json(doc, valid, head)
        state = ("verified" if out.get("vc_result") == "0" else "rejected") if "vc_result" in out else "unanswered"
        self.ledger.set_agreement_answer(protocol_no=agreement["protocol_no"], state=state,
                                         vc_result=out.get("vc_result", ""), add_word=out.get("add_word", ""))
        return 200, {**out, "protocol_no": agreement["protocol_no"], "state": state}

    def _item(self, agreement: dict, *, tra_no: str, amount_fen, tax_type_name: str = "增值税") -> DeductionItem:
        if type(amount_fen) is not int or amount_fen <= 0:
            raise BadRequest("amount_fen must be an integer > 0")
        today = dt.date.today()
        start = today.replace(day=1)
        return DeductionItem(
            tra_no=tra_no, pay_op_bk_code=agreement["pay_op_bk_code"], pay_acct=agreement["pay_acct"],
            hand_org_name=agreement["hand_org_name"], amount_fen=amount_fen, tax_vou_no=f"32{tra_no}{today:%m%d}",
            tax_pay_name=agreement["tax_pay_name"], protocol_no=agreement["protocol_no"],
            tax_types=(TaxTypeItem(project_id="10101", tax_type_name=tax_type_name, tax_start_date=start,
                                   tax_end_date=today, amount_fen=amount_fen),))

    def admin_deduction(self, body):
        """Send a 3001 for an agreement: {protocol_no, amount_fen, tax_type_name?}."""
        agreement = self._agreement(body.get("protocol_no"))
        tra_no = self.ledger.next_number("tra_no")
        item = self._item(agreement, tra_no=tra_no, amount_fen=body.get("amount_fen"),
                          tax_type_name=str(body.get("tax_type_name") or "增值税"))
        entrust_date = dt.date.today()
        captured = {}

        def build(head):
            captured["msg_id"] = head.msg_id
            message = RealTimeDeduction(head=head, tax_org_code=agreement["tax_org_code"], entrust_date=entrust_date,
                                        treasury=TREASURY, item=item)
            self.ledger.record_deductions([{"tax_org_code": agreement["tax_org_code"],
                                            "entrust_date": m.date_text(entrust_date), "tra_no": tra_no, "pack_no": "",
                                            "protocol_no": agreement["protocol_no"], "pay_acct": agreement["pay_acct"],
                                            "amount_fen": item.amount_fen, "msg_id": head.msg_id}])
            return m.real_time_document(message=message, encoding=self.encoding)

        doc, valid, head = self._send(m.REAL_TIME_DEDUCTION, build)
        out = self._reply_json(doc, valid, head)
        self.ledger.set_deduction_answer(tax_org_code=agreement["tax_org_code"], entrust_date=m.date_text(entrust_date),
                                         tra_no=tra_no, result=out.get("result", ""), add_word=out.get("add_word", ""),
                                         tax_date=out.get("tax_date", ""))
        return 200, {**out, "tax_org_code": agreement["tax_org_code"], "entrust_date": m.date_text(entrust_date),
                     "tra_no": tra_no}

    def admin_package(self, body):
        """Send a 3102: {protocol_no, count, amount_fen} (count items of amount_fen each, at most 1,000) or
        {items: [{protocol_no, amount_fen}, ...]}; return_term (days, default 3)."""
        if body.get("items"):
            wanted = [(self._agreement(i.get("protocol_no")), i.get("amount_fen")) for i in body["items"]]
        else:
            count = body.get("count")
            if type(count) is not int or not 1 <= count <= m.BATCH_MAX_ITEMS:
                raise BadRequest(f"count must be an integer from 1 to {m.BATCH_MAX_ITEMS}")
            agreement = self._agreement(body.get("protocol_no"))
            wanted = [(agreement, body.get("amount_fen"))] * count
        if len(wanted) > m.BATCH_MAX_ITEMS:
            raise BadRequest(f"a package carries at most {m.BATCH_MAX_ITEMS} items")
        entrust_date = dt.date.today()
        pack_no = self.ledger.next_number("pack_no")
        items = tuple(self._item(a, tra_no=self.ledger.next_number("tra_no"), amount_fen=amount) for a, amount in wanted)
        tax_org_code = wanted[0][0]["tax_org_code"]
        total = sum(i.amount_fen for i in items)

        def build(head):
            message = BatchDeduction(head=head, tax_org_code=tax_org_code, entrust_date=entrust_date, pack_no=pack_no,
                                     all_num=len(items), all_amount_fen=total,
                                     return_term=int(body.get("return_term") or 3), treasury=TREASURY, items=items)
            self.ledger.record_package({"tax_org_code": tax_org_code, "entrust_date": m.date_text(entrust_date),
                                        "pack_no": pack_no, "all_num": len(items), "all_amount_fen": total,
                                        "msg_id": head.msg_id})
            self.ledger.record_deductions([
                {"tax_org_code": tax_org_code, "entrust_date": m.date_text(entrust_date), "tra_no": i.tra_no,
                 "pack_no": pack_no, "protocol_no": i.protocol_no, "pay_acct": i.pay_acct, "amount_fen": i.amount_fen,
                 "msg_id": head.msg_id} for i in items])
            return m.batch_document(message=message, encoding=self.encoding)

        doc, valid, head = self._send(m.BATCH_DEDUCTION, build)
        out = self._reply_json(doc, valid, head)
        self.ledger.set_package_ack(tax_org_code=tax_org_code, entrust_date=m.date_text(entrust_date), pack_no=pack_no,
                                    result=out.get("result", ""), add_word=out.get("add_word", ""))
        return 200, {**out, "tax_org_code": tax_org_code, "entrust_date": m.date_text(entrust_date),
                     "pack_no": pack_no, "all_num": len(items), "all_amount_fen": total,
                     "tra_nos": [i.tra_no for i in items]}

    def admin_test(self, body):
        doc, valid, head = self._send(m.CONNECTIVITY_TEST, lambda h: m.test_document(
            head=h, remark=str(body.get("remark") or ""), encoding=self.encoding))
        return 200, self._reply_json(doc, valid, head)

    def admin_check_detail(self, body):
        """Send the day's 3111 (one package): every deduction it sent that day and got answered as paid, with
        planted differences: {chk_date: YYYYMMDD, chk_acct_ord?, chk_acct_type?, plant: {drop: [tra_no],
        change_amount: {tra_no: amount_fen}, unknown: [{tra_no, amount_fen, tax_org_code?}], duplicate: [tra_no]}}."""
        chk_date = m.read_date(str(body.get("chk_date") or m.date_text(dt.date.today())))
        plant = body.get("plant") or {}
        paid = self.ledger.paid_deductions(m.date_text(chk_date))
        known = {row["tra_no"] for row in paid}
        for tra_no in [*plant.get("drop", []), *plant.get("change_amount", {}), *plant.get("duplicate", [])]:
            if tra_no not in known:
                raise BadRequest(f"no paid deduction {tra_no!r} on {m.date_text(chk_date)}", code="NOT_FOUND",
                                 http_status=404)
        changed = {str(k): v for k, v in (plant.get("change_amount") or {}).items()}
        lines = []
        for row in paid:
            if row["tra_no"] in plant.get("drop", []):
                continue
            amount = changed.get(row["tra_no"], row["amount_fen"])
            if type(amount) is not int or amount <= 0:
                raise BadRequest("amount_fen must be an integer > 0")
            line = CheckLine(pay_op_bk_code=row["pay_op_bk_code"], pay_acct=row["pay_acct"],
                             ori_tax_org_code=row["tax_org_code"], ori_entrust_date=chk_date,
                             ori_pack_no=row["pack_no"], ori_tra_no=row["tra_no"], amount_fen=amount,
                             tax_vou_no=row.get("tax_vou_no", ""), tax_pay_name=row["tax_pay_name"],
                             protocol_no=row["protocol_no"])
            lines.append(line)
            if row["tra_no"] in plant.get("duplicate", []):
                lines.append(line)
        for extra in plant.get("unknown", []):
            amount = extra.get("amount_fen")
            if type(amount) is not int or amount <= 0:
                raise BadRequest("amount_fen must be an integer > 0")
            lines.append(CheckLine(pay_op_bk_code=PAY_BANK_CODE, pay_acct=str(extra.get("pay_acct") or "0000000000000000"),
                                   ori_tax_org_code=str(extra.get("tax_org_code") or (paid[0]["tax_org_code"] if paid
                                                                                     else TAX_ORG_CODE)),
                                   ori_entrust_date=chk_date, ori_pack_no="", ori_tra_no=str(extra["tra_no"]),
                                   amount_fen=amount))
        if len(lines) > m.BATCH_MAX_ITEMS:
            raise BadRequest(f"a check package carries at most {m.BATCH_MAX_ITEMS} lines")
        chk_acct_ord = str(body.get("chk_acct_ord") or "0001")

        def build(head):
            return m.check_detail_document(message=CheckDetail(
                head=head, pay_bk_code=PAY_BANK_CODE, chk_date=chk_date, chk_acct_ord=chk_acct_ord,
                payee_bank_no=TREASURY.payee_bank_no, chk_acct_type=str(body.get("chk_acct_type") or "1"),
                all_num=len(lines), all_amount_fen=sum(line.amount_fen for line in lines), child_pack_num=1,
                cur_pack_no=1, lines=tuple(lines)), encoding=self.encoding)

        doc, valid, head = self._send(m.CHECK_DETAIL, build)
        return 200, {**self._reply_json(doc, valid, head), "chk_date": m.date_text(chk_date),
                     "chk_acct_ord": chk_acct_ord, "all_num": len(lines),
                     "all_amount_fen": sum(line.amount_fen for line in lines),
                     "tra_nos": [line.ori_tra_no for line in lines]}

    def admin_check_results(self, body):
        return 200, {"results": self.ledger.check_results()}

    def admin_results(self, body):
        return 200, {"results": self.ledger.results()}

    def admin_received(self, body, *, msg_id: str):
        return 200, {"msg_id": msg_id, "deliveries": self.ledger.deliveries(msg_id)}

    def admin_counts(self, body):
        return 200, self.ledger.counts()

    def admin_faults(self, body):
        return 200, self.faults.describe()

    def admin_set_fault(self, body):
        self.faults.set(name=str(body.get("name") or ""), count=body.get("count"),
                        sleep_seconds=body.get("sleep_seconds"))
        return 200, self.faults.describe()

    def admin_clear_faults(self, body):
        self.faults.clear()
        return 200, self.faults.describe()

    def admin_reset(self, body):
        self.ledger.reset()
        self.faults.clear()
        return 200, {"status": "reset"}

    # ----------------------------------------------------------------- refunds, reversals, stop payments
    def _receive_refund_result(self, doc: m.Document, *, bad_signature: bool) -> bytes:
        result = m.read_refund_result(doc)
        row = {"ori_tax_org_code": result.ori_tax_org_code, "ori_entrust_date": m.date_text(result.ori_entrust_date),
               "ori_pack_no": result.ori_pack_no, "result": result.result, "add_word": result.add_word,
               "all_num": result.all_num, "all_amount_fen": result.all_amount_fen, "succ_num": result.succ_num,
               "succ_amount_fen": result.succ_amount_fen,
               "lines": [{"ori_tra_no": i.ori_tra_no, "draw_back_vou_no": i.draw_back_vou_no,
                          "amount_fen": i.amount_fen, "result": i.result, "add_word": i.add_word}
                         for i in result.items]}
        return self.ledger.store_refund_result(msg_id=doc.head.msg_id, result=row,
                                               reply_for=lambda code, note: self._generic(
                                                   doc, code, note, bad_signature=bad_signature))

    def admin_refund_order(self, body):
        """Send a 1104: {items: [{tax_pay_code, tax_pay_name, payee_acct, amount_fen, payee_name?,
        payee_op_bk_code?}], draw_back_tre_code?, tax_org_code?, return_term?}, or {resend: pack_no} to send an
        order sent before again, unchanged, under a new MsgID."""
        if body.get("resend"):
            order = self.ledger.refund_order(str(body["resend"]))
            if order is None:
                raise BadRequest(f"no refund order {body['resend']!r} was sent", code="NOT_FOUND", http_status=404)
        else:
            wanted = body.get("items") or []
            if not 1 <= len(wanted) <= m.BATCH_MAX_ITEMS:
                raise BadRequest(f"a refund order carries 1 to {m.BATCH_MAX_ITEMS} items")
            today = dt.date.today()
            order = {"tax_org_code": str(body.get("tax_org_code") or TAX_ORG_CODE), "entrust_date": m.date_text(today),
                     "pack_no": self.ledger.next_number("refund_pack_no"), "return_term": int(body.get("return_term") or 3),
                     "items": []}
            for i in wanted:
                amount = i.get("amount_fen")
                if type(amount) is not int or amount <= 0:
                    raise BadRequest("amount_fen must be an integer > 0")
                tra_no = self.ledger.next_number("refund_tra_no")
                order["items"].append({
                    "tra_no": tra_no, "draw_back_tre_code": str(body.get("draw_back_tre_code") or TREASURY.payee_org_code),
                    "payee_bank_no": str(i.get("payee_op_bk_code") or PAY_BANK_CODE),
                    "payee_op_bk_code": str(i.get("payee_op_bk_code") or PAY_BANK_CODE),
                    "payee_acct": str(i["payee_acct"]), "payee_name": str(i.get("payee_name") or i["tax_pay_name"]),
                    "tax_pay_code": str(i["tax_pay_code"]), "tax_pay_name": str(i["tax_pay_name"]),
                    "draw_back_vou_no": f"4{order['pack_no']}{tra_no}", "ori_tax_vou_no": f"32{tra_no}{today:%m%d}",
                    "amount_fen": amount, "bill_date": m.date_text(today), "budget_type": "1",
                    "budget_subject_code": "101010101", "budget_level_code": "3", "trim_sign": "0",
                    "draw_back_reason_code": "01"})
        items = tuple(RefundItem(**{**i, "bill_date": m.read_date(i["bill_date"])}) for i in order["items"])
        total = sum(i.amount_fen for i in items)

        def build(head):
            self.ledger.record_refund_order({**order, "msg_id": head.msg_id})
            return m.refund_order_document(message=RefundOrder(
                head=head, tax_org_code=order["tax_org_code"], entrust_date=m.read_date(order["entrust_date"]),
                pack_no=order["pack_no"], return_term=order["return_term"], all_num=len(items), all_amount_fen=total,
                items=items), encoding=self.encoding)

        doc, valid, head = self._send(m.REFUND_ORDER, build)
        out = self._reply_json(doc, valid, head)
        self.ledger.set_refund_ack(tax_org_code=order["tax_org_code"], entrust_date=order["entrust_date"],
                                   pack_no=order["pack_no"], result=out.get("result", ""),
                                   add_word=out.get("add_word", ""))
        return 200, {**out, "tax_org_code": order["tax_org_code"], "entrust_date": order["entrust_date"],
                     "pack_no": order["pack_no"], "all_num": len(items), "all_amount_fen": total,
                     "tra_nos": [i.tra_no for i in items]}

    def _receive_entry_detail(self, doc: m.Document, *, bad_signature: bool) -> bytes:
        d = m.read_entry_detail(doc)
        row = {"tax_org_code": d.tax_org_code, "tre_code": d.tre_code, "in_tre_date": m.date_text(d.in_tre_date),
               "cur_pack_no": d.cur_pack_no, "child_pack_num": d.child_pack_num, "all_num": d.all_num,
               "all_amount_fen": d.all_amount_fen,
               "lines": [{"budget_type": i.budget_type, "budget_level_code": i.budget_level_code,
                          "budget_subject_code": i.budget_subject_code, "amount_fen": i.amount_fen,
                          "exp_tax_vou_no": i.exp_tax_vou_no} for i in d.lines]}
        return self.ledger.store_entry_detail(msg_id=doc.head.msg_id, detail=row, reply_for=lambda code, note: self._generic(
            doc, code, note, bad_signature=bad_signature))

    def admin_entry_details(self, body):
        return 200, {"details": self.ledger.entry_details()}

    def admin_refund_results(self, body):
        return 200, {"results": self.ledger.refund_results()}

    def admin_reversal(self, body):
        """Send a 1021 for a deduction it sent: {tra_no, entrust_date? (YYYYMMDD), reason?}; unknown serials
        may be named with tax_org_code and entrust_date (the service answers them with a refusal)."""
        tra_no = str(body.get("tra_no") or "")
        deduction = self.ledger.deduction(tra_no=tra_no, entrust_date=str(body.get("entrust_date") or ""))
        tax_org_code = str(body.get("tax_org_code") or (deduction or {}).get("tax_org_code") or TAX_ORG_CODE)
        ori_date = str(body.get("entrust_date") or (deduction or {}).get("entrust_date") or m.date_text(dt.date.today()))
        cancel_no = self.ledger.next_number("cancel_no")
        today = dt.date.today()

        def build(head):
            return m.reversal_document(message=Reversal(
                head=head, tax_org_code=tax_org_code, entrust_date=today, cancel_no=cancel_no,
                ori_entrust_date=m.read_date(ori_date), ori_tra_no=tra_no,
                cancel_reason=str(body.get("reason") or "")), encoding=self.encoding)

        doc, valid, head = self._send(m.REVERSAL, build)
        out = self._reply_json(doc, valid, head)
        if "cancel_answer" in out:
            self.ledger.record_reversal({"tax_org_code": tax_org_code, "ori_entrust_date": ori_date, "ori_tra_no": tra_no,
                                         "cancel_no": cancel_no, "cancel_date": m.date_text(today),
                                         "cancel_answer": out["cancel_answer"],
                                         "result": out["result"], "add_word": out["add_word"]})
        return 200, {**out, "cancel_no": cancel_no, "tax_org_code": tax_org_code, "ori_entrust_date": ori_date,
                     "ori_tra_no": tra_no}

    def admin_stop(self, body):
        """Send a 1123: {pack_no, tra_no? (one item; none stops the package), entrust_date?, tax_org_code?,
        reason?}."""
        pack_no = str(body.get("pack_no") or "")
        package = self.ledger.package(pack_no) or {}
        tax_org_code = str(body.get("tax_org_code") or package.get("tax_org_code") or TAX_ORG_CODE)
        ori_date = m.read_date(str(body.get("entrust_date") or package.get("entrust_date")
                                   or m.date_text(dt.date.today())))
        stop_no = self.ledger.next_number("stop_no")

        def build(head):
            return m.stop_payment_document(message=StopPayment(
                head=head, tax_org_code=tax_org_code, entrust_date=dt.date.today(), stop_no=stop_no,
                ori_entrust_date=ori_date, ori_pack_no=pack_no, ori_tra_no=str(body.get("tra_no") or ""),
                stop_reason=str(body.get("reason") or "")), encoding=self.encoding)

        doc, valid, head = self._send(m.STOP_PAYMENT, build)
        return 200, {**self._reply_json(doc, valid, head), "stop_no": stop_no, "pack_no": pack_no}
