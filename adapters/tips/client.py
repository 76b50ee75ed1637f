"""`TipsClient` over SOAP 1.1 (schemas/tips_tax.wsdl): what the service sends to the tax system later.

How a message goes (`SoapTipsClient.send_message`, the same for every message number):
1. the CFX document is written once (adapters.tips.messages), with a new MsgID, and signed with the
   service's key; every attempt sends these same bytes, so a retry carries the same MsgID and the tax
   system answers a repeat with its first reply;
2. POSTed as a Send request through a zeep `Transport(timeout=..., operation_timeout=...)`;
3. the reply read with the hardened parser and tips_soap.xsd, its document with cfx.xsd, its signature
   checked with the tax system's key (TIPS_PEER_PUBLIC_KEY_FILE), its MsgRef checked against our MsgID;
4. every attempt and every reply recorded in the message log (`adapters.tips.models.TipsMessage`).

Error mapping (what callers may rely on):
- SOAP fault (any HTTP status), other 4xx                       -> TipsFault(code)    not retried
- a reply refusing the message (91005, 92001, 92004)            -> TipsFault(code)    not retried
- a reply whose signature does not verify                       -> TipsFault("91005") not retried
- timeout, connection failure, 5xx without a SOAP fault,
  a reply that is not a valid document                          -> retried `retries` times with backoff under
                                                                   the same MsgID, then TipsUnavailable
Any other result (90000, 94051 duplicate, ...) is returned as an `Acknowledgement` for the caller to judge.

Adding a message (refund results, reconciliation results 2111): write its document in messages.py and
add a method that calls `send_message(msg_no=..., key=..., build=...)`.

Domain code never sees zeep or lxml objects: only the dataclasses of `adapters.tips.interface`.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from typing import Callable

import requests
from zeep.transports import Transport

from adapters.tips import messages as m
from adapters.tips import signing
from adapters.tips.interface import (
    Acknowledgement, BatchResult, CheckResult, MessageHead, RefundResult, ResultCode, TipsFault, TipsUnavailable,
)
from adapters.tips.interface import SocialDeclaration, SocialDeclarationReply, SocialFlexiblePayment, SocialPayment
from adapters.tips.interface import TreasuryEntryDetail
from adapters.tips.models import TipsMessage
from adapters.xml import XmlRefused

logger = logging.getLogger(__name__)

_MAX_BACKOFF_SECONDS = 5.0
# Results that say the tax system refused the message itself: sending it again cannot help.
REFUSING_RESULTS = (ResultCode.SIGNATURE_INVALID, ResultCode.UNRECOGNISED, ResultCode.PARSE_ERROR)


class _Transport(Transport):
    """zeep's Transport without its DEBUG dump of whole bodies (they carry taxpayers' names and wallets)."""

    def post(self, address, message, headers):
        return self.session.post(address, data=message, headers=headers, timeout=self.operation_timeout)


def _default_recorder(**entry) -> None:
    from adapters.tips.messagelog import record_message

    record_message(**entry)


class SoapTipsClient:
    """The tax system over SOAP. Implements adapters.tips.interface.TipsClient. Thread-safe (one connection
    pool per thread)."""

    def __init__(self, *, url: str, node_code: str, peer_node_code: str, timeout_seconds: float, retries: int,
                 max_bytes: int, backoff_seconds: float = 0.5, encoding: str = "UTF-8",
                 sign: Callable[[bytes], tuple[str, str]] | None = None,
                 peer_key: Callable[[], object] | None = None, recorder: Callable[..., None] | None = None,
                 today: Callable[[], dt.date] | None = None):
        self.url = url
        self.node_code = node_code
        self.peer_node_code = peer_node_code
        self._timeout = float(timeout_seconds)  # float ok: seconds
        self._retries = max(0, int(retries))
        self._max_bytes = int(max_bytes)
        self._backoff = float(backoff_seconds)  # float ok: seconds
        self._encoding = encoding
        self._sign = sign or signing.service_sign
        self._peer_key = peer_key or signing.peer_public_key
        self._record = recorder or _default_recorder
        self._today = today or _local_today
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"SoapTipsClient({self.url!r})"

    def _transport(self) -> Transport:
        transport = getattr(self._local, "transport", None)
        if transport is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update({"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{m.SOAP_ACTION}"'})
            transport = self._local.transport = _Transport(timeout=self._timeout, operation_timeout=self._timeout,
                                                           session=session)
        return transport

    def close(self) -> None:
        transport = getattr(self._local, "transport", None)
        if transport is not None:
            transport.session.close()
        self._local = threading.local()

    # ----------------------------------------------------------------- TipsClient
    def send_batch_result(self, result: BatchResult) -> Acknowledgement:
        """2102 to the tax system; the tax system dedupes on (ori_tax_org_code, ori_entrust_date, ori_pack_no)
        and answers a repeat with 94051. Raises TipsFault, TipsUnavailable; TypeError/ValueError before anything
        is sent for amounts that are not int fen or more than 1,000 lines."""
        key = f"{result.ori_tax_org_code}-{m.date_text(result.ori_entrust_date)}-{result.ori_pack_no}"
        return self.send_message(msg_no=m.BATCH_RESULT, key=key,
                                 build=lambda head: m.batch_result_document(head=head, result=result,
                                                                            encoding=self._encoding))

    def send_check_result(self, result: CheckResult) -> Acknowledgement:
        """2111 to the tax system: our answer to a check date's detail (3111); the tax system dedupes on
        (OriPayBankNo, OriChkDate, OriChkAcctOrd). Raises TipsFault, TipsUnavailable."""
        key = f"CHK-{result.ori_pay_bank_no}-{m.date_text(result.ori_chk_date)}-{result.ori_chk_acct_ord}"
        return self.send_message(msg_no=m.CHECK_RESULT, key=key,
                                 build=lambda head: m.check_result_document(head=head, result=result,
                                                                            encoding=self._encoding))

    def send_refund_result(self, result: RefundResult) -> Acknowledgement:
        """2104 (project-defined) to the tax system: a refund order's result; the tax system dedupes on
        (ori_tax_org_code, ori_entrust_date, ori_pack_no) and answers a repeat with 94051. Raises TipsFault,
        TipsUnavailable."""
        key = f"TK-{result.ori_tax_org_code}-{m.date_text(result.ori_entrust_date)}-{result.ori_pack_no}"
        return self.send_message(msg_no=m.REFUND_RESULT, key=key,
                                 build=lambda head: m.refund_result_document(head=head, result=result,
                                                                             encoding=self._encoding))

    def send_social_declaration(self, declaration: SocialDeclaration) -> SocialDeclarationReply:
        """5101 (project-defined): an employer's social-insurance declaration; the tax system answers in the
        same call with 5102 (confirmed with a voucher number, or refused) and answers a repeat of the same
        (tax_org_code, decl_no) as it did the first time. Raises TipsFault, TipsUnavailable."""
        return self.send_message(msg_no=m.SOCIAL_DECLARATION, key=m.social_key(declaration.tax_org_code,
                                                                                 declaration.decl_no),
                                 build=lambda head: m.social_declaration_document(head=head, message=declaration,
                                                                                   encoding=self._encoding),
                                 read_reply=m.read_social_declaration_reply)

    def send_social_payment(self, payment: SocialPayment) -> Acknowledgement:
        """5103 (project-defined): a declaration's premiums were paid; answered with 9120 (94051 for a notice it
        already has). Raises TipsFault, TipsUnavailable."""
        return self.send_message(msg_no=m.SOCIAL_PAYMENT, key=m.social_key(payment.tax_org_code, payment.decl_no),
                                 build=lambda head: m.social_payment_document(head=head, message=payment,
                                                                               encoding=self._encoding))

    def send_social_flexible_payment(self, payment: SocialFlexiblePayment) -> Acknowledgement:
        """5104 (project-defined): a flexible-employment individual's payment; answered with 9120 (94051 for a
        notice it already has). Raises TipsFault, TipsUnavailable."""
        return self.send_message(msg_no=m.SOCIAL_FLEXIBLE_PAYMENT, key=m.social_key(payment.tax_org_code,
                                                                                      payment.pay_no),
                                 build=lambda head: m.social_flexible_payment_document(head=head, message=payment,
                                                                                        encoding=self._encoding))

    def send_entry_detail(self, detail: TreasuryEntryDetail) -> Acknowledgement:
        """3139 to the tax system: one package of a day's treasury entries; the tax system keeps the latest
        package per (TaxOrgCode, TreCode, InTreDate, CurPackNo). Raises TipsFault, TipsUnavailable."""
        key = f"RK-{detail.tax_org_code}-{detail.tre_code}-{m.date_text(detail.in_tre_date)}-{detail.cur_pack_no}"
        return self.send_message(msg_no=m.ENTRY_DETAIL, key=key,
                                 build=lambda head: m.entry_detail_document(head=head, detail=detail,
                                                                            encoding=self._encoding))

    def connectivity_test(self) -> Acknowledgement:
        """9005: is the tax system there and do our signatures agree? Raises as `send_batch_result`."""
        return self.send_message(msg_no=m.CONNECTIVITY_TEST, key="9005",
                                 build=lambda head: m.test_document(head=head, encoding=self._encoding))

    # ----------------------------------------------------------------- the exchange
    def send_message(self, *, msg_no: str, key: str, build: Callable[[MessageHead], bytes],
                     read_reply: Callable | None = None) -> Acknowledgement:
        """Write, sign and send one message (retried under the same MsgID); the tax system's 9120 reply as an
        Acknowledgement. Raises TipsFault, TipsUnavailable."""
        head = m.new_head(msg_no=msg_no, src=self.node_code, des=self.peer_node_code, work_date=self._today())
        document = build(head)
        signature, key_id = self._sign(document)
        body = m.soap_message(m.SignedDocument(document=document, signature=signature, key_id=key_id))
        attempts = self._retries + 1
        for number in range(1, attempts + 1):
            started = time.perf_counter()
            attempt = self._attempt(body, head, read_reply)
            duration_ms = round((time.perf_counter() - started) * 1000)
            self._log(direction=TipsMessage.Direction.OUTBOUND, body=document, msg_no=head.msg_no, msg_id=head.msg_id,
                      msg_ref=head.msg_ref, key=key, peer=head.des, signature_valid=True, result=attempt.code,
                      error_text=attempt.error, http_status=attempt.http_status, duration_ms=duration_ms,
                      attempt=number)
            if attempt.reply_body:
                reply_head = attempt.reply_head
                self._log(direction=TipsMessage.Direction.INBOUND, body=attempt.reply_body,
                          msg_no=reply_head.msg_no if reply_head else "", msg_id=reply_head.msg_id if reply_head else "",
                          msg_ref=reply_head.msg_ref if reply_head else "", key=key, peer=head.des,
                          signature_valid=attempt.signature_valid, result=attempt.code, error_text=attempt.error,
                          http_status=attempt.http_status, duration_ms=duration_ms, attempt=number)
            if attempt.outcome == _OK:
                return attempt.ack
            if attempt.outcome == _FAULT:
                raise TipsFault(f"tax system refused {msg_no} {key}: {attempt.error}", code=attempt.code)
            logger.info("TIPS %s %s attempt %d: %s", msg_no, key, number, attempt.error)
            if number < attempts:
                time.sleep(min(self._backoff * 2 ** (number - 1), _MAX_BACKOFF_SECONDS))
        raise TipsUnavailable(f"tax system unavailable on {msg_no} {key} (MsgID {head.msg_id}) after {attempts}"
                              f" attempt(s): {attempt.error}")

    def _attempt(self, body: bytes, head: MessageHead, read_reply: Callable | None = None) -> "_Attempt":
        attempt = _Attempt()
        try:
            response = self._transport().post(self.url, body, {})
        except requests.Timeout:
            attempt.error = f"no answer within {self._timeout:g} s"
            return attempt
        except requests.RequestException as exc:
            attempt.error = f"unreachable: {exc.__class__.__name__}"
            return attempt
        attempt.http_status = status = response.status_code
        try:
            signed = m.read_soap(response.content, max_bytes=self._max_bytes, expected=m.SEND_RESPONSE)
        except XmlRefused as exc:
            if 400 <= status < 500:
                return attempt.fault(f"HTTP_{status}", f"HTTP {status} without a SOAP fault")
            attempt.error = f"HTTP {status}, unreadable reply ({exc.code}): {exc}"
            return attempt
        if isinstance(signed, m.SoapFault):
            attempt.reply_body = response.content
            return attempt.fault(signed.code, f"{signed.faultcode}: {signed.message}")
        if status != 200:
            attempt.error = f"HTTP {status} with a reply in it"
            return attempt if status >= 500 else attempt.fault(f"HTTP_{status}", attempt.error)
        attempt.reply_body = signed.document
        try:
            doc = m.read_document(signed.document, max_bytes=self._max_bytes)
            attempt.reply_head = doc.head
            # A 9120 unless the message has a reply of its own (5101 -> 5102); both give result and add_word.
            reply = (read_reply or m.read_generic_reply)(doc)
        except (XmlRefused, m.UnrecognisedMessage) as exc:
            attempt.error = f"unreadable reply document: {exc}"
            return attempt
        attempt.signature_valid = signing.verify_with(self._peer_key(), signed.document, signed.signature)
        if not attempt.signature_valid:
            return attempt.fault(ResultCode.SIGNATURE_INVALID,
                                 "the reply's signature does not verify with the tax system's key")
        if doc.head.msg_ref != head.msg_id:
            attempt.error = f"reply refers to MsgID {doc.head.msg_ref}, sent {head.msg_id}"
            return attempt
        attempt.code = reply.result
        if reply.result in REFUSING_RESULTS:
            return attempt.fault(reply.result, f"{reply.result} {reply.add_word}".strip())
        attempt.outcome, attempt.ack = _OK, reply.acknowledgement()
        return attempt

    def _log(self, **entry) -> None:
        try:
            self._record(**entry)
        except Exception:  # the exchange's outcome matters more than its log entry; say so loudly
            logger.exception("TIPS message log: could not record %s", entry.get("msg_id"))


_OK, _FAULT, _RETRY = "ok", "fault", "retry"


class _Attempt:
    """What one HTTP exchange gave: for the message log and the retry decision."""

    def __init__(self):
        self.outcome = _RETRY
        self.code = ""
        self.error = ""
        self.http_status: int | None = None
        self.reply_body = b""
        self.reply_head: MessageHead | None = None
        self.signature_valid: bool | None = None
        self.ack: Acknowledgement | None = None

    def fault(self, code: str, error: str) -> "_Attempt":
        self.outcome, self.code, self.error = _FAULT, code, error
        return self


def _local_today() -> dt.date:
    from django.utils import timezone

    return timezone.localdate()


@functools.lru_cache(maxsize=1)
def get_tips_client() -> SoapTipsClient:
    """The process's TIPS client, built from settings (TIPS_SYSTEM_URL, TIPS_NODE_CODE, TIPS_PEER_NODE_CODE,
    TIPS_TIMEOUT_SECONDS, TIPS_RETRIES, TIPS_MESSAGE_MAX_BYTES). Tests call `get_tips_client.cache_clear()`
    after changing those settings."""
    from django.conf import settings

    return SoapTipsClient(url=settings.TIPS_SYSTEM_URL, node_code=settings.TIPS_NODE_CODE,
                          peer_node_code=settings.TIPS_PEER_NODE_CODE, timeout_seconds=settings.TIPS_TIMEOUT_SECONDS,
                          retries=settings.TIPS_RETRIES, max_bytes=settings.TIPS_MESSAGE_MAX_BYTES)
