"""The sandbox budget system as a WSGI application: SOAP 1.1 at the root, its WSDL, JSON admin endpoints.

Plain WSGI, no framework: the sandbox stays fast (a 50,000-detail voucher is one request) and
independent of the service it stands in for. Every SOAP request goes through the same hardened
reading as the client's replies (`messages.read_envelope`: size limit, no DOCTYPE, no entities,
XSD validation) before anything in it is read; a refused request is a SOAP fault and applies nothing.

| method and path | what |
| --- | --- |
| `POST /` | SOAP: QueryQuotas, SubmitVoucher, ReportPayment, QueryVoucherStatus (api key needed) |
| `GET /?wsdl`, `GET /budget.xsd` | the WSDL (soap:address pointing here) and its schema (no key) |
| `GET /health` | `{"status": "ok"}` (no key) |
| `/admin/...` | JSON, same api key: quotas, vouchers, counts, faults, demo seed, reset (README) |
"""
from __future__ import annotations

import dataclasses
import logging
import re
import threading
from typing import Callable

from adapters.budget import messages as m
from adapters.budget.sandbox.faults import DUPLICATE_ACK, FAULT, LOST_REPLY, TIMEOUT, FaultSwitches, InvalidFault
from adapters.budget.sandbox.ledger import BudgetLedger, SandboxBadRequest, SandboxConflict
from adapters.budget.sandbox.seed import DEMO_QUOTAS
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
from adapters.xml import XmlRefused

logger = logging.getLogger(__name__)

MAX_ADMIN_BODY_BYTES = 8 * 1024 * 1024
_REQUEST_TAGS = tuple(m.request_tag(op) for op in m.OPERATIONS)
_OPERATION_OF_TAG = {m.request_tag(op): op for op in m.OPERATIONS}
_ADDRESS = re.compile(rb'(<soap:address location=")[^"]*(")')
_LOST_REPLY_PAGE = b"<html><body><h1>502 Bad Gateway</h1><p>upstream closed the connection</p></body></html>"


class _Fault(Exception):
    def __init__(self, code: str, message: str, *, client_error: bool = True):
        super().__init__(message)
        self.code = code
        self.client_error = client_error


class BudgetSandboxApp:
    """WSGI application: api-key check, hardened reading, fault injection around the ledger."""

    def __init__(self, *, ledger: BudgetLedger, api_key: str, max_bytes: int,
                 stopping: threading.Event | None = None):
        self.ledger = ledger
        self.faults = FaultSwitches()
        self.max_bytes = max_bytes
        self._api_key = api_key.encode()
        self._stopping = stopping or threading.Event()
        self._wsdl = m.WSDL_PATH.read_bytes()
        self._xsd = m.XSD_PATH.read_bytes()
        self._soap_handlers: dict[str, Callable] = {
            m.QUERY_QUOTAS: self._query_quotas,
            m.SUBMIT_VOUCHER: self._submit_voucher,
            m.REPORT_PAYMENT: self._report_payment,
            m.QUERY_VOUCHER_STATUS: self._voucher_status,
        }
        self._admin_routes: Routes = [
            ("POST", re.compile(r"/admin/quotas"), self.admin_create_quotas),
            ("GET", re.compile(r"/admin/quotas/(?P<quota_id>[^/]+)"), self.admin_quota),
            ("POST", re.compile(r"/admin/quotas/(?P<quota_id>[^/]+)/amount"), self.admin_set_quota_amount),
            ("GET", re.compile(r"/admin/vouchers/(?P<voucher_no>[^/]+)"), self.admin_voucher),
            ("GET", re.compile(r"/admin/counts"), self.admin_counts),
            ("GET", re.compile(r"/admin/faults"), self.admin_faults),
            ("POST", re.compile(r"/admin/faults"), self.admin_set_fault),
            ("DELETE", re.compile(r"/admin/faults"), self.admin_clear_faults),
            ("POST", re.compile(r"/admin/seed-demo"), self.admin_seed_demo),
            ("POST", re.compile(r"/admin/reset"), self.admin_reset),
        ]

    # ----------------------------------------------------------------- WSGI
    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/health":
            return json_reply(start_response, 200, {"status": "ok"})
        if path == "/" and method == "GET" and environ.get("QUERY_STRING", "").lower() == "wsdl":
            return self._wsdl_reply(environ, start_response)
        if path == "/budget.xsd" and method == "GET":
            return reply(start_response, 200, self._xsd, "text/xml; charset=utf-8")
        if path.startswith("/admin/"):
            return self._admin(environ, start_response, method, path)
        if path == "/" and method == "POST":
            return self._soap(environ, start_response)
        return json_error(start_response, 405 if path == "/" else 404, "NOT_FOUND", f"{method} {path}")

    def _wsdl_reply(self, environ, start_response):
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '')}"
        address = f"{environ.get('wsgi.url_scheme', 'http')}://{host}/".encode()
        wsdl = _ADDRESS.sub(lambda match: match.group(1) + address + match.group(2), self._wsdl, count=1)
        return reply(start_response, 200, wsdl, "text/xml; charset=utf-8")

    # ----------------------------------------------------------------- SOAP
    def _fault(self, start_response, exc: _Fault):
        body = m.fault_body(client_error=exc.client_error, code=exc.code, message=str(exc))
        return reply(start_response, 500, body, "text/xml; charset=utf-8")

    def _soap(self, environ, start_response):
        try:
            if not authorized(environ, self._api_key):
                raise _Fault("UNAUTHORIZED", "missing or wrong api key (Authorization: Bearer ...)")
            payload = self._read_request(environ)
            operation = _OPERATION_OF_TAG[payload.tag]
            action = environ.get("HTTP_SOAPACTION", "").strip().strip('"')
            if action and action != m.SOAP_ACTION_PREFIX + operation:
                raise _Fault("SOAP_ACTION_MISMATCH", f"SOAPAction {action} does not match the body ({operation})")
            apply = self._soap_handlers[operation](payload)  # reads the request; returns the action
            return self._apply_with_faults(start_response, operation, apply)
        except _Fault as exc:
            return self._fault(start_response, exc)
        except SandboxBadRequest as exc:
            return self._fault(start_response, _Fault(exc.code, str(exc)))
        except Exception:
            logger.exception("sandbox budget system failed on a SOAP request")
            return self._fault(start_response, _Fault("INTERNAL_ERROR", "sandbox budget system error",
                                                      client_error=False))

    def _read_request(self, environ):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise _Fault("BAD_REQUEST", "bad Content-Length")
        if length > self.max_bytes:  # refused unread
            raise _Fault("OVERSIZED", f"request of {length:,} bytes exceeds the limit of {self.max_bytes:,} bytes")
        data = environ["wsgi.input"].read(length) if length else b""
        try:
            payload = m.read_envelope(data, max_bytes=self.max_bytes, expected=_REQUEST_TAGS)
        except XmlRefused as exc:
            raise _Fault(exc.code.upper(), f"request refused: {exc}")
        if isinstance(payload, m.SoapFault):
            raise _Fault("BAD_REQUEST", "a request cannot be a soap:Fault")
        return payload

    def _apply_with_faults(self, start_response, operation: str, apply: Callable[[], bytes]):
        fired = self.faults.fire(operation)
        if fired is not None and fired.name == FAULT:
            raise _Fault("INJECTED_FAULT", f"injected fault on {operation}: nothing was applied", client_error=False)
        if fired is not None and fired.name == TIMEOUT and fired.phase == "before_apply":
            # Silent first; the request is applied late, after the caller has given up waiting.
            if self._stopping.wait(fired.sleep_seconds):
                return reply(start_response, 503, b"stopping", "text/plain")
        body = apply()
        if fired is not None:
            if fired.name == TIMEOUT and fired.phase == "after_apply":
                self._stopping.wait(fired.sleep_seconds)  # applied, but the answer comes too late
            elif fired.name == LOST_REPLY:
                return reply(start_response, 502, _LOST_REPLY_PAGE, "text/html")
            elif fired.name == DUPLICATE_ACK:
                body = apply()  # delivered a second time: the answer is the dedupe table's
        return reply(start_response, 200, body, "text/xml; charset=utf-8")

    def _query_quotas(self, payload) -> Callable[[], bytes]:
        agency = payload.findtext(f"{{{m.NS}}}AgencyCode") or ""
        year = payload.findtext(f"{{{m.NS}}}StYear")
        ids = tuple(e.text for e in payload.iterfind(f"{{{m.NS}}}QuotaID"))
        return lambda: m.quotas_body(self.ledger.quotas(agency_code=agency, fiscal_year=int(year) if year else None,
                                                        quota_ids=ids))

    def _submit_voucher(self, payload) -> Callable[[], bytes]:
        header, details = m.voucher_rows(payload)
        return lambda: m.ack_body(m.SUBMIT_VOUCHER, self.ledger.submit_voucher(header, details))

    def _report_payment(self, payload) -> Callable[[], bytes]:
        report_no, voucher_no, lines = m.report_rows(payload)
        return lambda: m.ack_body(m.REPORT_PAYMENT, self.ledger.report_payment(report_no, voucher_no, lines))

    def _voucher_status(self, payload) -> Callable[[], bytes]:
        voucher_no = payload.findtext(f"{{{m.NS}}}VoucherNo")
        return lambda: m.voucher_status_body(self.ledger.voucher_status(voucher_no=voucher_no))

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
        except InvalidFault as exc:
            return json_error(start_response, 400, "BAD_REQUEST", str(exc))
        except Exception:
            logger.exception("sandbox budget system failed on %s %s", method, path)
            return json_error(start_response, 500, "INTERNAL_ERROR", "sandbox error")

    def admin_create_quotas(self, body):
        quotas = body.get("quotas")
        if not isinstance(quotas, list) or not quotas:
            raise BadRequest("quotas must be a non-empty list")
        return 201, {"created": self.ledger.create_quotas(quotas)}

    def admin_quota(self, body, *, quota_id: str):
        return 200, dataclasses.asdict(self.ledger.quota(quota_id=quota_id))

    def admin_set_quota_amount(self, body, *, quota_id: str):
        amount = body.get("amount_fen")
        if type(amount) is not int or amount < 0:
            raise BadRequest("amount_fen must be an integer >= 0")
        return 200, dataclasses.asdict(self.ledger.set_quota_amount(quota_id=quota_id, amount_fen=amount))

    def admin_voucher(self, body, *, voucher_no: str):
        status = self.ledger.voucher_status(voucher_no=voucher_no)
        lines = self.ledger.voucher_lines(voucher_no=voucher_no)
        states = {state: sum(1 for line in lines if line["state"] == state) for state in ("pending", "paid", "returned")}
        return 200, {**dataclasses.asdict(status), "line_states": states, "lines": lines}

    def admin_counts(self, body):
        return 200, self.ledger.counts()

    def admin_faults(self, body):
        return 200, self.faults.describe()

    def admin_set_fault(self, body):
        self.faults.set(name=str(body.get("name") or ""), count=body.get("count"), operation=body.get("operation"),
                        phase=body.get("phase"), sleep_seconds=body.get("sleep_seconds"))
        return 200, self.faults.describe()

    def admin_clear_faults(self, body):
        self.faults.clear()
        return 200, self.faults.describe()

    def admin_seed_demo(self, body):
        return 201, {"created": self.ledger.create_quotas(DEMO_QUOTAS)}

    def admin_reset(self, body):
        self.ledger.reset()
        self.faults.clear()
        return 200, {"status": "reset"}
