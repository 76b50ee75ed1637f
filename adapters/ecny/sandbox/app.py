"""The sandbox operator's HTTP protocol as a WSGI application (see adapters/ecny/README.md).

Plain WSGI, no framework: the sandbox must stay fast (a batch of 1,000 transfers is one request)
and independent of the service it stands in for.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from typing import Callable

from adapters.ecny.interface import MAX_REQUEST_ID_LENGTH, Conditions, TransferInstruction
from adapters.ecny.sandbox.faults import AFTER_APPLY, BEFORE_APPLY, FaultSwitches, InvalidFault
from adapters.ecny.sandbox.ledger import SandboxError, SandboxLedger
from adapters.sandbox_common.app import (
    JSON_CONTENT_TYPE,
    BadRequest,
    Routes,
    authorized,
    find_route,
    json_error,
    json_reply,
    read_json_body,
    reply,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_BATCH = 10_000
MAX_ID_LENGTH = MAX_REQUEST_ID_LENGTH
MAX_AMOUNT_FEN = 2 ** 63 - 1
_NO_CONDITIONS = Conditions()


def _text(item: dict, name: str, *, required: bool = False, max_length: int = 256) -> str:
    value = item.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > max_length or (required and not value):
        raise BadRequest(f"{name} must be a {'non-empty ' if required else ''}string of at most {max_length} characters")
    return value


def _conditions(data) -> Conditions:
    if data is None:
        return Conditions()
    if not isinstance(data, dict):
        raise BadRequest("conditions must be an object")
    for name in ("allowed_payees", "purposes"):
        values = data.get(name) or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadRequest(f"conditions.{name} must be a list of strings")
    if not isinstance(data.get("payee_category") or "", str):
        raise BadRequest("conditions.payee_category must be a string")
    try:
        conditions = Conditions.from_json(data)
    except (TypeError, ValueError):
        raise BadRequest("conditions.expires_at must be an ISO 8601 date-time")
    if conditions.expires_at is not None and conditions.expires_at.tzinfo is None:
        raise BadRequest("conditions.expires_at must carry a UTC offset")
    return conditions


def parse_instruction(item) -> TransferInstruction:
    """One JSON instruction -> TransferInstruction, or BadRequest naming the field.

    Only the shape is checked here; business problems (amount <= 0, unknown wallets) are per-item
    refusals decided by the ledger.
    """
    if not isinstance(item, dict):
        raise BadRequest("each instruction must be an object")
    amount = item.get("amount_fen")
    if type(amount) is not int:  # bool and float are refused: amounts are integer fen
        raise BadRequest("amount_fen must be an integer number of fen")
    if not -MAX_AMOUNT_FEN <= amount <= MAX_AMOUNT_FEN:  # the books keep 64-bit integers
        raise BadRequest("amount_fen must fit a 64-bit integer")
    request_id, payer, payee = item.get("request_id"), item.get("payer_wallet"), item.get("payee_wallet")
    purpose, memo, conditions = item.get("purpose_code") or "", item.get("memo") or "", item.get("conditions")
    if not (type(request_id) is str and 0 < len(request_id) <= MAX_ID_LENGTH and type(payer) is str
            and 0 < len(payer) <= 32 and type(payee) is str and 0 < len(payee) <= 32 and type(purpose) is str
            and len(purpose) <= 32 and type(memo) is str and len(memo) <= 256):
        # Slow path only to name the offending field.
        _text(item, "request_id", required=True, max_length=MAX_ID_LENGTH)
        _text(item, "payer_wallet", required=True, max_length=32)
        _text(item, "payee_wallet", required=True, max_length=32)
        _text(item, "purpose_code", max_length=32)
        _text(item, "memo", max_length=256)
    return TransferInstruction(
        request_id=request_id,
        payer_wallet=payer,
        payee_wallet=payee,
        amount_fen=amount,
        purpose_code=purpose,
        memo=memo,
        conditions=_NO_CONDITIONS if conditions is None else _conditions(conditions),
    )


class SandboxApp:
    """WSGI application: routes, api-key check, fault injection around the ledger's money calls."""

    def __init__(self, *, ledger: SandboxLedger, api_key: str, stopping: threading.Event | None = None):
        self.ledger = ledger
        self.faults = FaultSwitches()
        self._api_key = api_key.encode()
        self._stopping = stopping or threading.Event()
        self._routes: Routes = [
            ("POST", re.compile(r"/v1/wallets/verify"), self.verify_wallets),
            ("POST", re.compile(r"/v1/transfers"), self.transfer),
            ("POST", re.compile(r"/v1/transfers/batch"), self.transfer_batch),
            ("POST", re.compile(r"/v1/transfers/query"), self.query),
            ("POST", re.compile(r"/v1/reversals"), self.reverse),
            ("GET", re.compile(r"/v1/wallets/(?P<wallet_id>[^/]+)/statements/(?P<day>[^/]+)"), self.statement),
            ("GET", re.compile(r"/v1/wallets/(?P<wallet_id>[^/]+)/balance"), self.balance),
            ("POST", re.compile(r"/admin/wallets"), self.admin_open_wallet),
            ("POST", re.compile(r"/admin/wallets/bulk"), self.admin_open_wallets),
            ("GET", re.compile(r"/admin/wallets/(?P<wallet_id>[^/]+)"), self.admin_wallet),
            ("POST", re.compile(r"/admin/wallets/(?P<wallet_id>[^/]+)/fund"), self.admin_fund),
            ("POST", re.compile(r"/admin/wallets/(?P<wallet_id>[^/]+)/status"), self.admin_set_status),
            ("POST", re.compile(r"/admin/transfers/(?P<request_id>[^/]+)/return"), self.admin_return),
            ("GET", re.compile(r"/admin/faults"), self.admin_faults),
            ("POST", re.compile(r"/admin/faults"), self.admin_set_fault),
            ("DELETE", re.compile(r"/admin/faults"), self.admin_clear_faults),
            ("POST", re.compile(r"/admin/clock"), self.admin_clock),
            ("POST", re.compile(r"/admin/reset"), self.admin_reset),
        ]

    # ----------------------------------------------------------------- WSGI
    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/health":
            return json_reply(start_response, 200, {"status": "ok"})
        try:
            if not authorized(environ, self._api_key):
                raise BadRequest("missing or wrong api key", code="UNAUTHORIZED", http_status=401)
            handler, params = find_route(self._routes, method, path)
            if path.startswith("/v1/") and self.faults.latency_seconds:
                self._stopping.wait(self.faults.latency_seconds)
            body = (read_json_body(environ, max_bytes=MAX_BODY_BYTES, too_large_status=413)
                    if method in ("POST", "DELETE") else {})
            return handler(start_response, body, **params)
        except BadRequest as exc:
            return json_error(start_response, exc.http_status, exc.code, str(exc))
        except SandboxError as exc:
            return json_error(start_response, exc.http_status, exc.code, str(exc))
        except InvalidFault as exc:
            return json_error(start_response, 400, "BAD_REQUEST", str(exc))
        except Exception:
            logger.exception("sandbox operator failed on %s %s", method, path)
            return json_error(start_response, 500, "INTERNAL_ERROR", "sandbox operator error")

    # ----------------------------------------------------------------- money calls with faults
    def _money_call(self, start_response, apply: Callable[[], dict]):
        """Run `apply` (which returns the reply payload) with the armed faults around it."""
        if self.faults.fire(BEFORE_APPLY):
            return json_error(start_response, 500, "INJECTED_FAULT", "error_before_apply: nothing was applied")
        payload = apply()
        fault = self.faults.fire(AFTER_APPLY)
        if fault == "timeout_after_apply":
            # Applied, but the answer comes later than the caller is willing to wait.
            self._stopping.wait(self.faults.timeout_sleep_seconds)
        elif fault == "error_after_apply":
            return json_error(start_response, 500, "INJECTED_FAULT", "error_after_apply: the request was applied")
        elif fault == "malformed_reply":
            return reply(start_response, 200, b'{"results": [{"request_id": <garbage', JSON_CONTENT_TYPE)
        elif fault == "duplicate_reply":
            # The request is processed a second time and the caller gets the second answer, which
            # comes from the dedupe table (every item marked duplicate).
            payload = apply()
        return json_reply(start_response, 200, payload)

    def transfer(self, start_response, body):
        instruction = parse_instruction(body)
        return self._money_call(start_response, lambda: {"result": self.ledger.transfer_batch([instruction])[0]})

    def transfer_batch(self, start_response, body):
        items = body.get("instructions")
        if not isinstance(items, list) or not items or len(items) > MAX_BATCH:
            raise BadRequest(f"instructions must be a list of 1 to {MAX_BATCH} instructions")
        instructions = [parse_instruction(item) for item in items]
        return self._money_call(start_response, lambda: {"results": self.ledger.transfer_batch(instructions)})

    def reverse(self, start_response, body):
        request_id = _text(body, "request_id", required=True, max_length=MAX_ID_LENGTH)
        original = _text(body, "original_request_id", required=True, max_length=MAX_ID_LENGTH)
        reason = _text(body, "reason", max_length=256)
        return self._money_call(start_response, lambda: {"result": self.ledger.reverse(
            request_id=request_id, original_request_id=original, reason=reason)})

    # ----------------------------------------------------------------- reads
    def query(self, start_response, body):
        ids = body.get("request_ids")
        if not isinstance(ids, list) or len(ids) > MAX_BATCH or not all(isinstance(i, str) and i for i in ids):
            raise BadRequest(f"request_ids must be a list of at most {MAX_BATCH} non-empty strings")
        return json_reply(start_response, 200, {"results": self.ledger.query(ids)})

    def verify_wallets(self, start_response, body):
        items = body.get("items")
        if not isinstance(items, list) or len(items) > MAX_BATCH:
            raise BadRequest(f"items must be a list of at most {MAX_BATCH} objects")
        pairs = []
        for item in items:
            if not isinstance(item, dict):
                raise BadRequest("each item must be an object")
            pairs.append((_text(item, "wallet_id", required=True, max_length=32), _text(item, "holder_name")))
        return json_reply(start_response, 200, {"results": self.ledger.verify_wallets(pairs)})

    def statement(self, start_response, body, *, wallet_id: str, day: str):
        try:
            business_day = dt.date.fromisoformat(day)
        except ValueError:
            raise BadRequest("date must be YYYY-MM-DD")
        lines = self.ledger.statement(wallet_id=wallet_id, day=business_day)
        return json_reply(start_response, 200, {"wallet_id": wallet_id, "date": day, "lines": lines})

    def balance(self, start_response, body, *, wallet_id: str):
        wallet = self.ledger.wallet(wallet_id=wallet_id)
        return json_reply(start_response, 200, {"wallet_id": wallet_id, "balance_fen": wallet["balance_fen"],
                                                 "status": wallet["status"], "as_of": self.ledger.now().isoformat()})

    # ----------------------------------------------------------------- admin
    def admin_open_wallet(self, start_response, body):
        wallet_id = body.get("wallet_id") or self.ledger.next_wallet_id(operator_code=str(body.get("operator_code") or "001"))
        wallet_class = body.get("wallet_class")
        if wallet_class is not None and type(wallet_class) is not int:
            raise BadRequest("wallet_class must be an integer or null")
        wallet = self.ledger.open_wallet(wallet_id=wallet_id, wallet_type=body.get("wallet_type") or "",
                                         wallet_class=wallet_class, holder_name=body.get("holder_name") or "")
        return json_reply(start_response, 201, wallet)

    def admin_open_wallets(self, start_response, body):
        wallets = body.get("wallets")
        if not isinstance(wallets, list) or len(wallets) > 100_000:
            raise BadRequest("wallets must be a list of at most 100,000 objects")
        return json_reply(start_response, 201, {"opened": self.ledger.open_wallets(wallets)})

    def admin_wallet(self, start_response, body, *, wallet_id: str):
        return json_reply(start_response, 200, self.ledger.wallet(wallet_id=wallet_id))

    def admin_fund(self, start_response, body, *, wallet_id: str):
        return json_reply(start_response, 200, self.ledger.fund(wallet_id=wallet_id, amount_fen=body.get("amount_fen")))

    def admin_set_status(self, start_response, body, *, wallet_id: str):
        return json_reply(start_response, 200, self.ledger.set_status(wallet_id=wallet_id, status=body.get("status")))

    def admin_return(self, start_response, body, *, request_id: str):
        reason = _text(body, "reason", max_length=256) or "退回 (returned)"
        return json_reply(start_response, 200, self.ledger.return_transfer(request_id=request_id, reason=reason))

    def admin_faults(self, start_response, body):
        return json_reply(start_response, 200, self.faults.describe())

    def admin_set_fault(self, start_response, body):
        self.faults.set(name=str(body.get("name") or ""), count=body.get("count"), probability=body.get("probability"),
                        value=body.get("value"), sleep_seconds=body.get("sleep_seconds"), seed=body.get("seed"))
        return json_reply(start_response, 200, self.faults.describe())

    def admin_clear_faults(self, start_response, body):
        self.faults.clear()
        return json_reply(start_response, 200, self.faults.describe())

    def admin_clock(self, start_response, body):
        at = body.get("now")
        try:
            moment = dt.datetime.fromisoformat(at) if at else None
        except (TypeError, ValueError):
            raise BadRequest("now must be an ISO 8601 date-time with offset, or null")
        self.ledger.pin_clock(at=moment)
        return json_reply(start_response, 200, {"now": self.ledger.now().isoformat(), "pinned": moment is not None})

    def admin_reset(self, start_response, body):
        self.ledger.reset()
        self.faults.clear()
        return json_reply(start_response, 200, {"status": "reset"})
