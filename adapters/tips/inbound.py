"""The service's TIPS endpoint, without Django: SOAP bytes in, (HTTP status, SOAP bytes) out.

What a request goes through, in order; a step that refuses stops everything after it, so a refused
message never reaches the handler:
1. size: a body over TIPS_MESSAGE_MAX_BYTES is refused unread (SOAP fault, code 92004);
2. the SOAP envelope: hardened parse (no DOCTYPE, no entities, no network) and tips_soap.xsd
   (fault 92004);
3. the CFX document inside: hardened parse and cfx.xsd (fault 92004); MsgNo not matching its body
   (9120 reply, 92001);
4. the signature over the document's bytes with the tax system's key (TIPS_PEER_PUBLIC_KEY_FILE):
   missing or wrong -> a 9120 reply with 91005, nothing processed;
5. DES must be this service's node (TIPS_NODE_CODE), else 9120 with 92001;
6. by MsgNo: 9005 answered here (9120, 90000); 9114 -> handler.verify_agreement -> 9115;
   3001 -> handler.deduct_real_time -> 2001; 3102 -> handler.receive_batch -> 9121;
   3111 -> handler.receive_check_detail -> 9120 (the package stored, or a refusal code);
   1104 -> handler.receive_refund_order -> 9121; 1021 -> handler.reverse_deduction -> 2021;
   1123 -> handler.stop_payment -> 2123;
   any other number -> 9120 with 92001.
Every reply is signed with the service's key and sent in the same call, in the request's encoding.
Each message in and out goes to the message log. A handler that raises is a bug: the request gets a
soap:Server fault (the tax system sends again under the same MsgID; the handler dedupes).
"""
from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.utils.module_loading import import_string

from adapters.tips import messages as m
from adapters.tips import signing
from adapters.tips.interface import ResultCode
from adapters.tips.messagelog import record_message
from adapters.tips.models import TipsMessage
from adapters.xml import XmlRefused

logger = logging.getLogger(__name__)

XML_CONTENT_TYPE = "text/xml; charset=utf-8"


def message_handler():
    """The handler named by settings.TIPS_MESSAGE_HANDLER (a dotted path to a class, instantiated for each
    message, or to an object), imported lazily so the tax domain can arrive after this adapter."""
    target = import_string(settings.TIPS_MESSAGE_HANDLER)
    return target() if isinstance(target, type) else target


class _Refused(Exception):
    def __init__(self, code: str, message: str, *, client_error: bool = True):
        super().__init__(message)
        self.code = code
        self.client_error = client_error


def _fault(exc: _Refused) -> tuple[int, bytes]:
    return 500, m.fault_body(client_error=exc.client_error, code=exc.code, message=str(exc))


def _today() -> dt.date:
    from django.utils import timezone

    return timezone.localdate()


def handle_soap(body: bytes, *, content_length: int | None = None) -> tuple[int, bytes]:
    """One SOAP request to /tips/soap/ -> (HTTP status, SOAP response bytes). Never raises for bad input."""
    started = time.perf_counter()
    max_bytes = settings.TIPS_MESSAGE_MAX_BYTES
    inbound = TipsMessage.Direction.INBOUND

    def elapsed() -> int:
        return round((time.perf_counter() - started) * 1000)

    logged = body  # the envelope; once read, the document in it (in the envelope it is base64, masked by nothing)
    try:
        if (content_length or 0) > max_bytes or len(body) > max_bytes:
            raise _Refused(ResultCode.PARSE_ERROR, f"request exceeds the limit of {max_bytes:,} bytes")
        try:
            signed = m.read_soap(body, max_bytes=max_bytes, expected=m.SEND_REQUEST)
        except XmlRefused as exc:
            raise _Refused(ResultCode.PARSE_ERROR, f"SOAP request refused ({exc.code}): {exc}")
        if isinstance(signed, m.SoapFault):
            raise _Refused(ResultCode.UNRECOGNISED, "a request cannot be a soap:Fault")
        logged = signed.document
        try:
            doc = m.read_document(signed.document, max_bytes=max_bytes)
        except XmlRefused as exc:
            raise _Refused(ResultCode.PARSE_ERROR, f"CFX document refused ({exc.code}): {exc}")
        except m.UnrecognisedMessage as exc:
            doc = None
            unrecognised = str(exc)
        else:
            unrecognised = ""
    except _Refused as exc:
        record_message(direction=inbound, body=logged[:max_bytes], result=exc.code, error_text=str(exc),
                       http_status=500, duration_ms=elapsed())
        return _fault(exc)

    if doc is None:  # valid XML, but MsgNo and body disagree: no head we can trust to answer to
        record_message(direction=inbound, body=signed.document, result=ResultCode.UNRECOGNISED, error_text=unrecognised,
                       http_status=500, duration_ms=elapsed())
        return _fault(_Refused(ResultCode.UNRECOGNISED, unrecognised))

    head = doc.head
    valid = signing.verify_with(signing.peer_public_key(), signed.document, signed.signature)
    key = m.message_key(doc)
    request_row = dict(direction=inbound, body=signed.document, msg_no=head.msg_no, msg_id=head.msg_id,
                       msg_ref=head.msg_ref, key=key, peer=head.src, signature_valid=valid)
    if not valid:
        reason = "signature missing" if not signed.signature else "signature does not verify with the tax system's key"
        return _reply_generic(doc, ResultCode.SIGNATURE_INVALID, reason, request_row, started)
    if head.des != settings.TIPS_NODE_CODE:
        return _reply_generic(doc, ResultCode.UNRECOGNISED, f"DES {head.des} is not this node", request_row, started)

    try:
        if head.msg_no == m.CONNECTIVITY_TEST:
            return _reply_generic(doc, ResultCode.SUCCESS, "", request_row, started)
        if head.msg_no == m.AGREEMENT_VERIFY:
            request = m.read_verification(doc)
            reply = message_handler().verify_agreement(request)
            reply_head = m.reply_head(head, msg_no=m.AGREEMENT_REPLY, work_date=_today())
            data = m.verification_reply_document(head=reply_head, reply=reply, request=request, encoding=doc.encoding)
            result = ResultCode.SUCCESS if reply.vc_result == "0" else ResultCode.AGREEMENT_VERIFY_FAILED
        elif head.msg_no == m.REAL_TIME_DEDUCTION:
            result_ = message_handler().deduct_real_time(m.read_real_time(doc))
            reply_head = m.reply_head(head, msg_no=m.REAL_TIME_REPLY, work_date=_today())
            data = m.real_time_reply_document(head=reply_head, result=result_, encoding=doc.encoding)
            result = result_.result
        elif head.msg_no == m.BATCH_DEDUCTION:
            request = m.read_batch(doc)
            ack = message_handler().receive_batch(request)
            reply_head = m.reply_head(head, msg_no=m.BATCH_ACK, work_date=_today())
            data = m.batch_ack_document(head=reply_head, ack=ack, request=request, encoding=doc.encoding)
            result = ack.result
        elif head.msg_no == m.CHECK_DETAIL:
            ack = message_handler().receive_check_detail(m.read_check_detail(doc))
            reply_head = m.reply_head(head, msg_no=m.GENERIC_REPLY, work_date=_today())
            data = m.generic_reply_document(head=reply_head, ori_msg_no=head.msg_no, result=ack.result,
                                            add_word=ack.add_word, encoding=doc.encoding)
            result = ack.result
        elif head.msg_no in _REFUND_REVERSAL_STOP:
            reply_head, data, result = _REFUND_REVERSAL_STOP[head.msg_no](doc)
        else:
            return _reply_generic(doc, ResultCode.UNRECOGNISED, f"message {head.msg_no} is not accepted here",
                                  request_row, started)
    except Exception:
        logger.exception("TIPS handler failed on %s %s", head.msg_no, head.msg_id)
        record_message(**request_row, result="", error_text="handler error (see the service log)", http_status=500,
                       duration_ms=round((time.perf_counter() - started) * 1000))
        return _fault(_Refused(ResultCode.TIMEOUT, "the service could not process the message; send it again",
                               client_error=False))
    return _signed_reply(data, reply_head, key, result, request_row, started)


def _refund_order(doc: m.Document):
    request = m.read_refund_order(doc)
    ack = message_handler().receive_refund_order(request)
    reply_head = m.reply_head(doc.head, msg_no=m.BATCH_ACK, work_date=_today())
    return reply_head, m.batch_ack_document(head=reply_head, ack=ack, request=request, encoding=doc.encoding), ack.result


def _reversal(doc: m.Document):
    request = m.read_reversal(doc)
    reply = message_handler().reverse_deduction(request)
    reply_head = m.reply_head(doc.head, msg_no=m.REVERSAL_REPLY, work_date=_today())
    return (reply_head, m.reversal_reply_document(head=reply_head, reply=reply, request=request, encoding=doc.encoding),
            reply.result)


def _stop_payment(doc: m.Document):
    request = m.read_stop_payment(doc)
    reply = message_handler().stop_payment(request)
    reply_head = m.reply_head(doc.head, msg_no=m.STOP_PAYMENT_REPLY, work_date=_today())
    return (reply_head, m.stop_payment_reply_document(head=reply_head, reply=reply, request=request,
                                                      encoding=doc.encoding), reply.result)


# Each: a validated document -> (reply head, signed-to-be reply bytes, result for the log).
_REFUND_REVERSAL_STOP = {m.REFUND_ORDER: _refund_order, m.REVERSAL: _reversal, m.STOP_PAYMENT: _stop_payment}


def _reply_generic(doc: m.Document, result: str, reason: str, request_row: dict, started: float) -> tuple[int, bytes]:
    head = m.reply_head(doc.head, msg_no=m.GENERIC_REPLY, work_date=_today())
    data = m.generic_reply_document(head=head, ori_msg_no=doc.head.msg_no, result=result, add_word=reason,
                                    encoding=doc.encoding)
    return _signed_reply(data, head, request_row["key"], result, request_row, started, error_text=reason)


def _signed_reply(data: bytes, head, key: str, result: str, request_row: dict, started: float, *,
                  error_text: str = "") -> tuple[int, bytes]:
    signature, key_id = signing.service_sign(data)
    duration_ms = round((time.perf_counter() - started) * 1000)
    record_message(**request_row, result=result, error_text=error_text, http_status=200, duration_ms=duration_ms)
    record_message(direction=TipsMessage.Direction.OUTBOUND, body=data, msg_no=head.msg_no, msg_id=head.msg_id,
                   msg_ref=head.msg_ref, key=key, peer=head.des, signature_valid=True, result=result,
                   error_text=error_text, http_status=200, duration_ms=duration_ms)
    return 200, m.soap_message(m.SignedDocument(document=data, signature=signature, key_id=key_id), response=True)
