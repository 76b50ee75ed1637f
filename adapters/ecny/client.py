"""`OperatorClient` over JSON/HTTP: the protocol of adapters/ecny/README.md.

Error mapping (what callers may rely on):
- connect or read timeout, connection failure, 5xx       -> OperatorUnavailable   (outcome unknown)
- 2xx whose body is not JSON or has the wrong shape:
  wrong count of results, request ids not matching, unknown status, missing fields
                                                          -> OperatorProtocolError (outcome unknown)
- 4xx (bad credentials, malformed request)                -> OperatorRejected      (nothing applied)
Raised exceptions carry `http_status` and `code` attributes when the operator sent them.

No call is retried here: an unknown outcome is resolved by `query` with the same request ids.

Thread safety: one `requests.Session` (with its connection pool) per thread, so a client can be
shared by every thread of a worker process.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time

import orjson
import requests
from requests.adapters import HTTPAdapter

from adapters.ecny.interface import (
    Conditions,
    OperatorError,
    OperatorProtocolError,
    OperatorRejected,
    OperatorUnavailable,
    StatementLine,
    TransferInstruction,
    TransferResult,
    TransferStatus,
    WalletBalance,
    WalletCheck,
)

logger = logging.getLogger(__name__)

_TRANSFER_STATUSES = frozenset({TransferStatus.SETTLED, TransferStatus.FAILED, TransferStatus.RETURNED,
                                TransferStatus.REVERSED})
_QUERY_STATUSES = _TRANSFER_STATUSES | {TransferStatus.NOT_FOUND}
_MOVED_STATUSES = frozenset({TransferStatus.SETTLED, TransferStatus.RETURNED, TransferStatus.REVERSED})


def _error(cls: type[OperatorError], message: str, *, http_status: int | None = None, code: str = "") -> OperatorError:
    exc = cls(message)
    exc.http_status = http_status
    exc.code = code
    return exc


def instruction_to_json(instruction: TransferInstruction) -> dict:
    if type(instruction.amount_fen) is not int:
        raise TypeError(f"amount_fen must be int fen, got {type(instruction.amount_fen).__name__}")
    data = {
        "request_id": instruction.request_id,
        "payer_wallet": instruction.payer_wallet,
        "payee_wallet": instruction.payee_wallet,
        "amount_fen": instruction.amount_fen,
        "purpose_code": instruction.purpose_code,
        "memo": instruction.memo,
    }
    conditions: Conditions = instruction.conditions
    if conditions is not None and not conditions.is_empty():
        if conditions.expires_at is not None and conditions.expires_at.tzinfo is None:
            raise ValueError("conditions.expires_at must be timezone-aware")
        data["conditions"] = conditions.to_json()
    return data


@functools.lru_cache(maxsize=256)
def _parse_datetime(value: str) -> dt.datetime:
    # Cached: the results of one batch carry the same few settlement times.
    return dt.datetime.fromisoformat(value)


def _aware_datetime(value, what: str) -> dt.datetime:
    if not isinstance(value, str):
        raise OperatorProtocolError(f"{what} is not a date-time string")
    try:
        moment = _parse_datetime(value)
    except ValueError:
        raise OperatorProtocolError(f"{what} is not an ISO 8601 date-time")
    if moment.tzinfo is None:
        raise OperatorProtocolError(f"{what} has no UTC offset")
    return moment


# The longest text of a reply each field may hold: what the service's columns keep (a transfer's operator_txn_id,
# a statement line's). A longer one would have been applied and then failed to store on PostgreSQL (value too
# long), the money moved and the transfer left submitted; it is a reply of the wrong shape instead.
MAX_LENGTHS = {"operator_txn_id": 64, "request_id": 128, "counterparty_wallet": 32, "kind": 16, "wallet_type": 4}
WALLET_CLASSES = range(1, 5)  # WL01-WL04; a wallet is registered with its class (a small positive integer column)
_LARGEST_FEN = 2**63 - 1  # a BIGINT column's (orjson reads integers up to 2**64 - 1)


def _string(data: dict, name: str, what: str) -> str:
    value = data.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OperatorProtocolError(f"{what}.{name} is not a string")
    if len(value) > MAX_LENGTHS.get(name, len(value)):
        raise OperatorProtocolError(f"{what}.{name} is longer than {MAX_LENGTHS[name]} characters")
    return value


def parse_result(data, *, expected_request_id: str, allowed_statuses: frozenset[str]) -> TransferResult:
    """One result object of a reply -> TransferResult, or OperatorProtocolError if it is not one."""
    if not isinstance(data, dict):
        raise OperatorProtocolError("a result is not an object")
    if data.get("request_id") != expected_request_id:
        raise OperatorProtocolError("reply's request id does not match the request")
    status = data.get("status")
    if not isinstance(status, str) or status not in allowed_statuses:  # a list or an object is unhashable
        raise OperatorProtocolError(f"unexpected status {status!r} for request {expected_request_id}")
    operator_txn_id = _string(data, "operator_txn_id", "result")
    code = _string(data, "code", "result")
    settled_at = data.get("settled_at")
    if status in _MOVED_STATUSES:
        if not operator_txn_id or settled_at is None:
            raise OperatorProtocolError(f"{status} result for {expected_request_id} lacks operator_txn_id or settled_at")
    if status == TransferStatus.FAILED and not code:
        raise OperatorProtocolError(f"failed result for {expected_request_id} carries no refusal code")
    return TransferResult(
        request_id=expected_request_id,
        status=status,
        operator_txn_id=operator_txn_id,
        code=code,
        message=_string(data, "message", "result"),
        settled_at=_aware_datetime(settled_at, "settled_at") if settled_at is not None else None,
    )


def _results_list(body: dict, name: str, expected: int) -> list:
    items = body.get(name)
    if not isinstance(items, list):
        raise OperatorProtocolError(f"reply has no {name} list")
    if len(items) != expected:
        raise OperatorProtocolError(f"reply has {len(items)} {name} for {expected} requested")
    return items


class HttpOperatorClient:
    """The e-CNY operator over JSON/HTTP. Implements adapters.ecny.interface.OperatorClient."""

    def __init__(self, base_url: str, api_key: str, timeout_seconds: float, connect_timeout_seconds: float):
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = (float(connect_timeout_seconds), float(timeout_seconds))  # float ok: seconds, not money
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def __repr__(self) -> str:  # never shows the api key
        return f"HttpOperatorClient({self.base_url!r})"

    # ----------------------------------------------------------------- transport
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # No transport retries: a money call must never be sent twice behind the caller's back.
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update({"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json",
                                    "Accept": "application/json"})
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close the connection pools of every thread's session."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    def _call(self, method: str, path: str, payload: dict | None, *, what: str) -> dict:
        """One HTTP call -> the reply body (a dict), with the error mapping of this module."""
        # orjson: a batch of 1,000 instructions is encoded and its reply read several times faster
        # than with the json module, in every worker, for every chunk.
        data = None if payload is None else orjson.dumps(payload)
        started = time.perf_counter()
        try:
            response = self._session().request(method, self.base_url + path, data=data, timeout=self._timeout,
                                               allow_redirects=False)
        except requests.Timeout as exc:
            logger.debug("operator %s: timeout after %.0f ms", what, (time.perf_counter() - started) * 1000)
            raise _error(OperatorUnavailable, f"operator timed out on {what}") from exc
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            raise _error(OperatorProtocolError, f"operator reply to {what} broke off: {exc.__class__.__name__}") from exc
        except requests.RequestException as exc:
            logger.debug("operator %s: %s", what, exc.__class__.__name__)
            raise _error(OperatorUnavailable, f"operator unreachable on {what}: {exc.__class__.__name__}") from exc
        status = response.status_code
        logger.debug("operator %s: HTTP %s in %.0f ms", what, status, (time.perf_counter() - started) * 1000)
        if status >= 500:
            code, message = self._error_body(response)
            raise _error(OperatorUnavailable, f"operator error {status} on {what}: {code} {message}".rstrip(),
                         http_status=status, code=code)
        if status >= 400:
            code, message = self._error_body(response)
            raise _error(OperatorRejected, f"operator refused {what} ({status}): {code} {message}".rstrip(),
                         http_status=status, code=code)
        if status >= 300 or status < 200:
            raise _error(OperatorProtocolError, f"unexpected HTTP {status} on {what}", http_status=status)
        try:
            body = orjson.loads(response.content)
        except (UnicodeDecodeError, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
            raise _error(OperatorProtocolError, f"operator reply to {what} is not JSON", http_status=status) from exc
        if not isinstance(body, dict):
            raise _error(OperatorProtocolError, f"operator reply to {what} is not an object", http_status=status)
        return body

    @staticmethod
    def _error_body(response) -> tuple[str, str]:
        try:
            error = response.json().get("error") or {}
            return str(error.get("code") or ""), str(error.get("message") or "")[:300]
        except (ValueError, AttributeError):
            return "", ""

    # ----------------------------------------------------------------- OperatorClient
    def verify_wallets(self, items: list[tuple[str, str]]) -> list[WalletCheck]:
        """Check (wallet_id, holder_name) pairs in one call; one result per pair, same order.

        Raises OperatorUnavailable, OperatorProtocolError, OperatorRejected.
        """
        if not items:
            return []
        body = self._call("POST", "/v1/wallets/verify",
                          {"items": [{"wallet_id": w, "holder_name": n} for w, n in items]},
                          what=f"verify_wallets[{len(items)}]")
        checks = []
        for (wallet_id, _name), data in zip(items, _results_list(body, "results", len(items))):
            if not isinstance(data, dict) or data.get("wallet_id") != wallet_id:
                raise OperatorProtocolError("wallet check does not match the wallet asked about")
            flags = [data.get(k, False) for k in ("exists", "active", "holder_name_matches")]
            wallet_class = data.get("wallet_class")
            if not all(isinstance(f, bool) for f in flags) or not (
                    wallet_class is None or (type(wallet_class) is int and wallet_class in WALLET_CLASSES)):
                raise OperatorProtocolError("wallet check has wrong field types or a wallet class other than 1-4")
            checks.append(WalletCheck(wallet_id=wallet_id, exists=flags[0], active=flags[1],
                                      holder_name_matches=flags[2], wallet_type=_string(data, "wallet_type", "check"),
                                      wallet_class=wallet_class))
        return checks

    def transfer(self, instruction: TransferInstruction) -> TransferResult:
        """Apply one transfer (at most once per request id).

        Raises OperatorUnavailable / OperatorProtocolError (outcome unknown: query later) or
        OperatorRejected (malformed request, nothing applied).
        """
        body = self._call("POST", "/v1/transfers", instruction_to_json(instruction),
                          what=f"transfer {instruction.request_id}")
        result = parse_result(body.get("result"), expected_request_id=instruction.request_id,
                              allowed_statuses=_TRANSFER_STATUSES)
        self._log_duplicates(body.get("result"), instruction.request_id)
        return result

    def transfer_batch(self, instructions: list[TransferInstruction]) -> list[TransferResult]:
        """Apply many transfers in one call; one result each, same order. Errors as `transfer`:
        on any exception the outcome of every instruction in the batch is unknown."""
        if not instructions:
            return []
        payload = {"instructions": [instruction_to_json(i) for i in instructions]}
        what = f"transfer_batch[{len(instructions)}] from {instructions[0].request_id}"
        body = self._call("POST", "/v1/transfers/batch", payload, what=what)
        items = _results_list(body, "results", len(instructions))
        results = [parse_result(data, expected_request_id=ins.request_id, allowed_statuses=_TRANSFER_STATUSES)
                   for ins, data in zip(instructions, items)]
        duplicates = sum(1 for data in items if data.get("duplicate") is True)
        if duplicates:
            logger.debug("operator %s: %d answered from the operator's dedupe table", what, duplicates)
        return results

    def query(self, request_ids: list[str]) -> list[TransferResult]:
        """What happened to these request ids (NOT_FOUND: never applied), same order.

        Raises OperatorUnavailable, OperatorProtocolError, OperatorRejected.
        """
        if not request_ids:
            return []
        body = self._call("POST", "/v1/transfers/query", {"request_ids": list(request_ids)},
                          what=f"query[{len(request_ids)}] from {request_ids[0]}")
        items = _results_list(body, "results", len(request_ids))
        return [parse_result(data, expected_request_id=rid, allowed_statuses=_QUERY_STATUSES)
                for rid, data in zip(request_ids, items)]

    def reverse(self, *, request_id: str, original_request_id: str, reason: str) -> TransferResult:
        """Reverse a settled transfer (冲正) under the reversal's own request id.

        SETTLED: the money went back; FAILED with NOT_REVERSIBLE or INSUFFICIENT_BALANCE otherwise.
        Raises as `transfer`.
        """
        body = self._call("POST", "/v1/reversals",
                          {"request_id": request_id, "original_request_id": original_request_id, "reason": reason},
                          what=f"reverse {original_request_id} as {request_id}")
        self._log_duplicates(body.get("result"), request_id)
        return parse_result(body.get("result"), expected_request_id=request_id, allowed_statuses=_TRANSFER_STATUSES)

    def statement(self, wallet_id: str, day: dt.date) -> list[StatementLine]:
        """Every booking on a wallet for one business day (Asia/Shanghai), in booking order.

        Raises OperatorRejected for an unknown wallet, else as `query`.
        """
        body = self._call("GET", f"/v1/wallets/{wallet_id}/statements/{day.isoformat()}", None,
                          what=f"statement {day.isoformat()}")
        lines = body.get("lines")
        if not isinstance(lines, list):
            raise OperatorProtocolError("statement reply has no lines list")
        parsed = []
        for data in lines:
            if not isinstance(data, dict):
                raise OperatorProtocolError("a statement line is not an object")
            amount = data.get("amount_fen")
            direction = data.get("direction")
            if type(amount) is not int or not 0 < amount <= _LARGEST_FEN or direction not in ("debit", "credit"):
                raise OperatorProtocolError("a statement line has a bad amount or direction")
            parsed.append(StatementLine(
                operator_txn_id=_string(data, "operator_txn_id", "line"),
                request_id=_string(data, "request_id", "line"),
                booked_at=_aware_datetime(data.get("booked_at"), "booked_at"),
                direction=direction,
                counterparty_wallet=_string(data, "counterparty_wallet", "line"),
                amount_fen=amount,
                kind=_string(data, "kind", "line"),
            ))
        return parsed

    def balance(self, wallet_id: str) -> WalletBalance:
        """A wallet's balance now. Raises OperatorRejected for an unknown wallet, else as `query`."""
        body = self._call("GET", f"/v1/wallets/{wallet_id}/balance", None, what="balance")
        amount = body.get("balance_fen")
        if type(amount) is not int or abs(amount) > _LARGEST_FEN or body.get("wallet_id") != wallet_id:
            raise OperatorProtocolError("balance reply has no integer balance_fen for this wallet")
        return WalletBalance(wallet_id=wallet_id, balance_fen=amount, status=_string(body, "status", "balance"),
                             as_of=_aware_datetime(body.get("as_of"), "as_of"))

    @staticmethod
    def _log_duplicates(data, request_id: str) -> None:
        if isinstance(data, dict) and data.get("duplicate") is True:
            logger.debug("operator answered %s from its dedupe table", request_id)


@functools.lru_cache(maxsize=1)
def get_operator_client() -> HttpOperatorClient:
    """The process's operator client, built from settings (ECNY_OPERATOR_*). Tests call
    `get_operator_client.cache_clear()` after changing those settings."""
    from django.conf import settings

    return HttpOperatorClient(
        settings.ECNY_OPERATOR_URL,
        settings.ECNY_OPERATOR_API_KEY,
        settings.ECNY_OPERATOR_TIMEOUT_SECONDS,
        settings.ECNY_OPERATOR_CONNECT_TIMEOUT_SECONDS,
    )
