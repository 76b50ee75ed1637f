"""How HttpOperatorClient maps what comes back over the wire to results and exceptions.

A tiny canned HTTP server stands in for the operator, so each reply can be exactly as wrong as
the case needs.
"""
import datetime as dt
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.ecny.client import HttpOperatorClient
from adapters.ecny.interface import (
    OperatorProtocolError,
    OperatorRejected,
    OperatorUnavailable,
    TransferInstruction,
    TransferStatus,
)

SETTLED_AT = "2026-03-02T02:00:00+00:00"


class CannedOperator:
    """Answers every request with `reply(request_json) -> (status, body bytes, extra headers)`."""

    def __init__(self):
        self.reply = lambda request: (200, b"{}", {})
        self.requests = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length)) if length else None
                canned.requests.append((self.command, self.path, dict(self.headers), request))
                status, body, headers = canned.reply(request)
                self.send_response(status)
                headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def answer(self, status=200, payload=None, *, raw=None, headers=None):
        body = raw if raw is not None else json.dumps(payload).encode()
        self.reply = lambda request: (status, body, headers or {})

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canned():
    operator = CannedOperator()
    yield operator
    operator.stop()


@pytest.fixture
def client(canned):
    client = HttpOperatorClient(canned.url, "secret-key", 0.5, 1.0)
    yield client
    client.close()


def ins(request_id="r-1", amount_fen=100):
    return TransferInstruction(request_id=request_id, payer_wallet="0010000000000001",
                               payee_wallet="0010000000000002", amount_fen=amount_fen)


def settled(request_id="r-1", **overrides):
    return {"request_id": request_id, "status": "settled", "operator_txn_id": "EC1", "code": "", "message": "",
            "settled_at": SETTLED_AT, "duplicate": False, **overrides}


def test_good_batch_reply_is_parsed_in_order(canned, client):
    canned.answer(payload={"results": [settled("r-1"), settled("r-2", status="failed", operator_txn_id="",
                                                               settled_at=None, code="INSUFFICIENT_BALANCE")]})

    results = client.transfer_batch([ins("r-1"), ins("r-2")])

    assert [(r.request_id, r.status, r.code) for r in results] == [
        ("r-1", TransferStatus.SETTLED, ""), ("r-2", TransferStatus.FAILED, "INSUFFICIENT_BALANCE")]
    assert results[0].settled_at == dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.timezone.utc)
    method, path, headers, request = canned.requests[0]
    assert (method, path) == ("POST", "/v1/transfers/batch")
    assert headers["Authorization"] == "Bearer secret-key"
    assert request["instructions"][1] == {"request_id": "r-2", "payer_wallet": "0010000000000001",
                                          "payee_wallet": "0010000000000002", "amount_fen": 100,
                                          "purpose_code": "", "memo": ""}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_unavailable(canned, client, status):
    canned.answer(status, {"error": {"code": "DOWN", "message": "maintenance"}})

    with pytest.raises(OperatorUnavailable) as raised:
        client.transfer(ins())

    assert not isinstance(raised.value, OperatorProtocolError)
    assert raised.value.http_status == status and raised.value.code == "DOWN"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_4xx_is_rejected(canned, client, status):
    canned.answer(status, {"error": {"code": "BAD_REQUEST", "message": "amount_fen must be an integer"}})

    with pytest.raises(OperatorRejected) as raised:
        client.transfer_batch([ins()])

    assert raised.value.http_status == status and "amount_fen" in str(raised.value)


def test_4xx_without_a_json_body_is_still_rejected(canned, client):
    canned.answer(403, raw=b"<html>forbidden</html>", headers={"Content-Type": "text/html"})

    with pytest.raises(OperatorRejected):
        client.query(["r-1"])


@pytest.mark.parametrize("raw", [b"not json", b"", b"[1, 2]", b'{"results": [', "{}".encode("utf-16")])
def test_unreadable_reply_is_a_protocol_error(canned, client, raw):
    canned.answer(200, raw=raw)

    with pytest.raises(OperatorProtocolError):
        client.transfer_batch([ins()])


@pytest.mark.parametrize("results", [
    [],                                            # too few
    [settled("r-1"), settled("r-2")],              # too many
    [settled("r-2")],                              # request id does not match
    [settled("r-1", status="pending")],            # unknown status
    [settled("r-1", status="not_found")],          # not a transfer outcome
    [settled("r-1", status=["settled"])],          # a list or an object: unhashable, was a TypeError
    [settled("r-1", status={"settled": True})],
    [settled("r-1", operator_txn_id="E" * 65)],   # longer than a transfer keeps: failed to store on PostgreSQL
    [settled("r-1", operator_txn_id="")],          # settled without a transaction id
    [settled("r-1", settled_at=None)],             # settled without a time
    [settled("r-1", settled_at="2026-03-02T02:00:00")],  # naive time
    [settled("r-1", settled_at="yesterday")],
    [settled("r-1", status="failed", code="")],    # refused without a code
    [settled("r-1", message=7)],
    ["r-1"],
])
def test_wrong_shaped_results_are_protocol_errors(canned, client, results):
    canned.answer(payload={"results": results})

    with pytest.raises(OperatorProtocolError):
        client.transfer_batch([ins("r-1")])


def test_results_out_of_order_are_a_protocol_error(canned, client):
    canned.answer(payload={"results": [settled("r-2"), settled("r-1")]})

    with pytest.raises(OperatorProtocolError):
        client.transfer_batch([ins("r-1"), ins("r-2")])


def test_single_transfer_reply_without_result_is_a_protocol_error(canned, client):
    canned.answer(payload={"results": [settled()]})

    with pytest.raises(OperatorProtocolError):
        client.transfer(ins())


def test_query_accepts_not_found_and_checks_ids(canned, client):
    canned.answer(payload={"results": [{"request_id": "a", "status": "not_found"}, settled("b", status="returned",
                                                                                           message="wallet closed")]})
    found = client.query(["a", "b"])
    assert [(r.status, r.message) for r in found] == [("not_found", ""), ("returned", "wallet closed")]

    canned.answer(payload={"results": [{"request_id": "a", "status": "not_found"}]})
    with pytest.raises(OperatorProtocolError):
        client.query(["a", "b"])


def test_redirect_is_not_followed(canned, client):
    canned.answer(302, raw=b"", headers={"Location": "http://127.0.0.1:1/elsewhere"})

    with pytest.raises(OperatorProtocolError):
        client.transfer(ins())
    assert len(canned.requests) == 1


def test_read_timeout_is_unavailable(canned, client):
    def slow(request):
        time.sleep(1.5)  # the client waits 0.5 s
        return 200, json.dumps({"result": settled()}).encode(), {}

    canned.reply = slow

    with pytest.raises(OperatorUnavailable) as raised:
        client.transfer(ins())
    assert not isinstance(raised.value, OperatorProtocolError)


def test_reply_cut_short_is_unknown(canned, client):
    canned.answer(200, raw=b'{"results": [', headers={"Content-Length": "500", "Connection": "close"})

    with pytest.raises(OperatorUnavailable):
        client.transfer_batch([ins()])


def test_connection_refused_is_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the client connects: nobody listens
    client = HttpOperatorClient(f"http://127.0.0.1:{port}", "k", 0.5, 0.5)

    with pytest.raises(OperatorUnavailable) as raised:
        client.query(["r-1"])
    assert not isinstance(raised.value, OperatorProtocolError)


def test_no_request_is_sent_for_empty_lists(canned, client):
    assert client.transfer_batch([]) == [] and client.query([]) == [] and client.verify_wallets([]) == []
    assert canned.requests == []


def test_amounts_must_be_integer_fen(client, canned):
    from decimal import Decimal

    with pytest.raises(TypeError):
        client.transfer(ins(amount_fen=Decimal("1.00")))
    with pytest.raises(TypeError):
        client.transfer(ins(amount_fen=1.0))
    assert canned.requests == []


def test_statement_lines_are_parsed_and_checked(canned, client):
    line = {"operator_txn_id": "EC1", "request_id": "r-1", "booked_at": SETTLED_AT, "direction": "debit",
            "counterparty_wallet": "0010000000000002", "amount_fen": 100, "kind": "transfer"}
    canned.answer(payload={"wallet_id": "0010000000000001", "date": "2026-03-02", "lines": [line]})

    (parsed,) = client.statement("0010000000000001", dt.date(2026, 3, 2))

    assert (parsed.direction, parsed.amount_fen, parsed.kind) == ("debit", 100, "transfer")
    assert canned.requests[0][1] == "/v1/wallets/0010000000000001/statements/2026-03-02"
    canned.answer(payload={"lines": [{**line, "amount_fen": 1.5}]})
    with pytest.raises(OperatorProtocolError):
        client.statement("0010000000000001", dt.date(2026, 3, 2))


def test_debug_log_names_request_ids_never_wallets_or_key(canned, client, caplog):
    canned.answer(payload={"result": settled("r-log-1")})

    with caplog.at_level(logging.DEBUG, logger="adapters.ecny.client"):
        client.transfer(ins("r-log-1"))

    text = caplog.text
    assert "r-log-1" in text
    assert "0010000000000001" not in text and "0010000000000002" not in text and "secret-key" not in text
    assert "secret-key" not in repr(client)


@pytest.mark.parametrize("change", [{"operator_txn_id": "E" * 65}, {"request_id": "r" * 129}, {"kind": "k" * 17},
                                    {"counterparty_wallet": "0" * 33}, {"amount_fen": 2 ** 63}])
def test_statement_lines_the_columns_cannot_hold_are_protocol_errors(canned, client, change):
    """A statement line is stored for reconciliation as read: a text longer than its column (or an amount past a
    BIGINT) failed there on PostgreSQL, ending the reconciliation run with a server error."""
    line = {"operator_txn_id": "E" * 64, "request_id": "r" * 128, "booked_at": SETTLED_AT, "direction": "credit",
            "counterparty_wallet": "0" * 32, "amount_fen": 2 ** 63 - 1, "kind": "k" * 16}
    canned.answer(payload={"lines": [line]})
    assert client.statement("0010000000000001", dt.date(2026, 3, 2))[0].amount_fen == 2 ** 63 - 1  # at the limits
    canned.answer(payload={"lines": [{**line, **change}]})
    with pytest.raises(OperatorProtocolError):
        client.statement("0010000000000001", dt.date(2026, 3, 2))


def test_a_transfer_id_of_64_characters_is_read():
    from adapters.ecny.client import _QUERY_STATUSES, parse_result

    result = parse_result(settled("r-1", operator_txn_id="E" * 64), expected_request_id="r-1",
                          allowed_statuses=_QUERY_STATUSES)
    assert result.operator_txn_id == "E" * 64


@pytest.mark.parametrize("change", [{"wallet_type": "WT010"}, {"wallet_class": 0}, {"wallet_class": 40_000},
                                    {"wallet_class": -1}])
def test_a_wallet_check_the_registry_cannot_hold_is_a_protocol_error(canned, client, change):
    """A new payee's wallet is registered as the operator describes it (type in 4 characters, class a small positive
    number): a longer type or a class out of range failed there on PostgreSQL, in the middle of paying a run."""
    check = {"wallet_id": "0010000000000001", "exists": True, "active": True, "holder_name_matches": True,
             "wallet_type": "WT01", "wallet_class": 4}
    canned.answer(payload={"results": [check]})
    assert client.verify_wallets([("0010000000000001", "张三")])[0].wallet_class == 4
    canned.answer(payload={"results": [{**check, **change}]})
    with pytest.raises(OperatorProtocolError):
        client.verify_wallets([("0010000000000001", "张三")])
