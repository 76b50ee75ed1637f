"""`BudgetClient` over SOAP 1.1 (schemas/budget.wsdl): the budget-management integration system.

How a call goes (`SoapBudgetClient._exchange`, the same for every operation):
1. the request body: QueryQuotas and QueryVoucherStatus built by zeep from the WSDL kept in the repo;
   SubmitVoucher and ReportPayment (up to 100,000 details) written by `adapters.budget.messages`
   from text templates, because zeep takes ~1.7 s to serialise a 50,000-detail voucher (same
   documents, same SOAPAction; see README "Why two ways to build a body");
2. POSTed through a zeep `Transport(timeout=..., operation_timeout=...)` with the api key header;
3. the reply read with the hardened parser (size limit, no DOCTYPE, no entities, no network) and
   the payload validated against budget.xsd before any field is read;
4. every attempt recorded in the message log (`adapters.budget.models.BudgetMessage`).

Error mapping (what callers may rely on):
- SOAP fault (any HTTP status)                          -> BudgetFault(code, message)   not retried; nothing applied
- other 4xx                                             -> BudgetFault(code "HTTP_4xx")  not retried
- timeout, connection failure, 5xx without a SOAP fault,
  a reply that is not a valid document                  -> retried `retries` times with backoff, under the
                                                           same voucher/report number, then BudgetUnavailable
A retried SubmitVoucher or ReportPayment is safe: the budget system dedupes on the voucher or report
number and answers a repeat with the original acknowledgement (`duplicate=True`).

Domain code never sees zeep or lxml objects: only the dataclasses of `adapters.budget.interface`.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Callable

import requests
from lxml import etree
from zeep import Client, Settings
from zeep.transports import Transport

from adapters.budget import messages as m
from adapters.budget.interface import (
    Acknowledgement,
    BudgetFault,
    BudgetUnavailable,
    PaymentReport,
    QuotaInfo,
    Voucher,
    VoucherStatus,
)
from adapters.xml import XmlRefused

logger = logging.getLogger(__name__)

# Outcomes recorded in the message log.
OK = "ok"  # answered (query answered, or acknowledgement accepted)
REFUSED = "refused"  # answered with a business refusal (acknowledgement not accepted)
FAULT = "fault"  # SOAP fault or 4xx: terminal, nothing applied
UNAVAILABLE = "unavailable"  # timeout, connection failure, 5xx, unreadable reply: outcome unknown

_MAX_BACKOFF_SECONDS = 5.0


class _Transport(Transport):
    """zeep's Transport without its DEBUG dump of whole bodies (they carry payees' names and wallets):
    the message log keeps them, behind roles."""

    def post(self, address, message, headers):
        return self.session.post(address, data=message, headers=headers, timeout=self.operation_timeout)


@functools.lru_cache(maxsize=1)
def wsdl_client() -> Client:
    """The process's zeep client, built once from the WSDL in the repo (never fetched from the network).

    strict=True; forbid_dtd, forbid_entities and forbid_external on.
    """
    settings = Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True,
                        xml_huge_tree=False)
    return Client(str(m.WSDL_PATH), settings=settings, transport=_Transport(timeout=10, operation_timeout=10))


def _soap_actions(client: Client) -> dict[str, str]:
    service = client.wsdl.services["BudgetService"]
    binding = service.ports["BudgetPort"].binding
    return {op: binding.get(op).soapaction for op in m.OPERATIONS}


class _Attempt:
    """What one HTTP exchange gave: for the message log and the retry decision."""

    __slots__ = ("http_status", "response_body", "outcome", "error", "code", "payload", "retry")

    def __init__(self):
        self.http_status: int | None = None
        self.response_body: bytes = b""
        self.outcome = UNAVAILABLE
        self.error = ""
        self.code = ""
        self.payload = None
        self.retry = False


def _default_recorder(**entry) -> None:
    from adapters.budget.messagelog import record_message

    record_message(**entry)


class SoapBudgetClient:
    """The budget system over SOAP. Implements adapters.budget.interface.BudgetClient.

    Thread safety: one zeep Transport (so one requests.Session and its connection pool) per thread;
    the zeep client built from the WSDL is shared (it only builds messages).
    """

    def __init__(self, *, url: str, api_key: str, timeout_seconds: float, retries: int, max_bytes: int,
                 backoff_seconds: float = 0.5, recorder: Callable[..., None] | None = None):
        self.url = url
        self._api_key = api_key
        self._timeout = float(timeout_seconds)  # float ok: seconds
        self._retries = max(0, int(retries))
        self._max_bytes = int(max_bytes)
        self._backoff = float(backoff_seconds)  # float ok: seconds
        self._record = recorder or _default_recorder
        self._zeep = wsdl_client()
        self._actions = _soap_actions(self._zeep)
        self._local = threading.local()
        self._transports: list[Transport] = []
        self._transports_lock = threading.Lock()

    def __repr__(self) -> str:  # never shows the api key
        return f"SoapBudgetClient({self.url!r})"

    # ----------------------------------------------------------------- transport
    def _transport(self) -> Transport:
        transport = getattr(self._local, "transport", None)
        if transport is None:
            session = requests.Session()
            # No transport-level retries: retries happen here, counted and recorded.
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update({"Authorization": f"Bearer {self._api_key}",
                                    "Content-Type": "text/xml; charset=utf-8"})
            transport = _Transport(timeout=self._timeout, operation_timeout=self._timeout, session=session)
            self._local.transport = transport
            with self._transports_lock:
                self._transports.append(transport)
        return transport

    def close(self) -> None:
        """Close every thread's connection pool."""
        with self._transports_lock:
            transports, self._transports = self._transports, []
        for transport in transports:
            transport.session.close()
        self._local = threading.local()

    def _attempt(self, operation: str, body: bytes) -> _Attempt:
        attempt = _Attempt()
        try:
            response = self._transport().post(self.url, body, {"SOAPAction": f'"{self._actions[operation]}"'})
        except requests.Timeout:
            attempt.error = f"no answer within {self._timeout:g} s"
            attempt.retry = True
            return attempt
        except requests.RequestException as exc:
            attempt.error = f"unreachable: {exc.__class__.__name__}"
            attempt.retry = True
            return attempt
        attempt.http_status = status = response.status_code
        attempt.response_body = content = response.content
        try:
            payload = m.read_envelope(content, max_bytes=self._max_bytes, expected=(m.response_tag(operation),))
        except XmlRefused as exc:
            if 400 <= status < 500:
                attempt.outcome, attempt.code = FAULT, f"HTTP_{status}"
                attempt.error = f"HTTP {status} without a SOAP fault"
            else:
                attempt.error = f"HTTP {status}, unreadable reply ({exc.code}): {exc}"
                attempt.retry = True
            return attempt
        if isinstance(payload, m.SoapFault):
            attempt.outcome, attempt.code = FAULT, payload.code
            attempt.error = f"{payload.faultcode}: {payload.message}"
            return attempt
        if status != 200:
            attempt.error = f"HTTP {status} with a {operation}Response in it"
            attempt.retry = status >= 500
            if not attempt.retry:
                attempt.outcome, attempt.code = FAULT, f"HTTP_{status}"
            return attempt
        attempt.outcome, attempt.payload = OK, payload
        return attempt

    def _exchange(self, operation: str, key: str, body: bytes, *, refused: Callable[[etree._Element], str] | None = None):
        """POST one operation with retries; every attempt goes to the message log.

        Returns the validated response payload. Raises BudgetFault or BudgetUnavailable.
        """
        attempts = self._retries + 1
        stored_request = None
        for number in range(1, attempts + 1):
            started = time.perf_counter()
            attempt = self._attempt(operation, body)
            duration_ms = round((time.perf_counter() - started) * 1000)
            if attempt.outcome == OK and refused is not None:
                attempt.code = refused(attempt.payload)
                if attempt.code:
                    attempt.outcome = REFUSED
            stored_request = self._log(operation=operation, key=key, request_body=body, attempt=attempt,
                                       attempt_number=number, duration_ms=duration_ms, stored_request=stored_request)
            logger.debug("budget %s %s attempt %d: %s HTTP %s in %d ms", operation, key, number, attempt.outcome,
                         attempt.http_status, duration_ms)
            if attempt.outcome in (OK, REFUSED):
                return attempt.payload
            if attempt.outcome == FAULT:
                raise BudgetFault(f"budget system refused {operation} {key}: {attempt.error}", code=attempt.code)
            if number < attempts:
                time.sleep(min(self._backoff * 2 ** (number - 1), _MAX_BACKOFF_SECONDS))
        raise BudgetUnavailable(f"budget system unavailable on {operation} {key} after {attempts} attempt(s):"
                                f" {attempt.error}")

    def _log(self, *, operation, key, request_body, attempt, attempt_number, duration_ms, stored_request):
        try:
            return self._record(operation=operation, key=key, request_body=request_body,
                                response_body=attempt.response_body, outcome=attempt.outcome, code=attempt.code,
                                error_text=attempt.error, http_status=attempt.http_status, duration_ms=duration_ms,
                                attempt=attempt_number, stored_request=stored_request)
        except Exception:  # the call's outcome matters more than its log entry; say so loudly
            logger.exception("budget message log: could not record %s %s attempt %d", operation, key, attempt_number)
            return stored_request

    def _zeep_body(self, operation: str, **kwargs) -> bytes:
        envelope = self._zeep.create_message(self._zeep.service, operation, **kwargs)
        return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")

    # ----------------------------------------------------------------- BudgetClient
    def query_quotas(self, *, agency_code: str = "", fiscal_year: int | None = None,
                     quota_ids: tuple[str, ...] = ()) -> list[QuotaInfo]:
        """Quotas matching every given filter (all when none is given). Raises BudgetFault, BudgetUnavailable."""
        body = self._zeep_body(m.QUERY_QUOTAS, AgencyCode=agency_code or None, StYear=fiscal_year,
                               QuotaID=list(quota_ids))
        key = "|".join(filter(None, [agency_code, str(fiscal_year or ""), ",".join(quota_ids)]))[:128] or "*"
        return m.read_quotas(self._exchange(m.QUERY_QUOTAS, key, body))

    def submit_voucher(self, voucher: Voucher) -> Acknowledgement:
        """Send a payment voucher; accepted means its amount is reserved on the quota. Retried under the
        same voucher number. Raises BudgetFault, BudgetUnavailable; TypeError/ValueError (before
        anything is sent) for amounts that are not int fen >= 0 or text XML cannot carry."""
        body = m.submit_voucher_body(voucher)
        payload = self._exchange(m.SUBMIT_VOUCHER, voucher.voucher_no, body, refused=_refusal_code)
        return self._checked_ack(m.read_ack(payload), voucher.voucher_no)

    def report_payment(self, report: PaymentReport) -> Acknowledgement:
        """Report paid and returned lines of an accepted voucher (回单 / 退回). Retried under the same
        report number. Raises as `submit_voucher`."""
        body = m.report_payment_body(report)
        payload = self._exchange(m.REPORT_PAYMENT, report.report_no, body, refused=_refusal_code)
        return self._checked_ack(m.read_ack(payload), report.report_no)

    def voucher_status(self, voucher_no: str) -> VoucherStatus:
        """What the budget system holds for a voucher number. Raises BudgetFault, BudgetUnavailable."""
        body = self._zeep_body(m.QUERY_VOUCHER_STATUS, VoucherNo=voucher_no)
        status = m.read_voucher_status(self._exchange(m.QUERY_VOUCHER_STATUS, voucher_no, body))
        if status.voucher_no != voucher_no:
            raise BudgetUnavailable(f"budget system answered for voucher {status.voucher_no}, asked {voucher_no}")
        return status

    @staticmethod
    def _checked_ack(ack: Acknowledgement, key: str) -> Acknowledgement:
        if ack.key != key:
            raise BudgetUnavailable(f"budget system acknowledged {ack.key}, sent {key}")
        return ack


def _refusal_code(payload: etree._Element) -> str:
    ack = m.read_ack(payload)
    return "" if ack.accepted else (ack.code or "REFUSED")


@functools.lru_cache(maxsize=1)
def get_budget_client() -> SoapBudgetClient:
    """The process's budget client, built from settings (BUDGET_SYSTEM_*, BUDGET_MESSAGE_MAX_BYTES).
    Tests call `get_budget_client.cache_clear()` after changing those settings."""
    from django.conf import settings

    return SoapBudgetClient(
        url=settings.BUDGET_SYSTEM_URL,
        api_key=settings.BUDGET_SYSTEM_API_KEY,
        timeout_seconds=settings.BUDGET_SYSTEM_TIMEOUT_SECONDS,
        retries=settings.BUDGET_SYSTEM_RETRIES,
        max_bytes=settings.BUDGET_MESSAGE_MAX_BYTES,
    )
