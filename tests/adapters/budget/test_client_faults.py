"""The client against the sandbox with injected faults, over real HTTP: retries under the same
voucher or report number, nothing applied twice, and every attempt in the message log."""
import http.server
import threading
import time

import pytest

from adapters.budget.client import SoapBudgetClient
from adapters.budget.interface import BudgetFault, BudgetUnavailable, VoucherState
from adapters.budget.models import BudgetMessage
from tests.adapters.budget.conftest import CLIENT_TIMEOUT_SECONDS, QUOTA_ID, report, voucher

pytestmark = pytest.mark.django_db

# The sandbox withholds its answer this long on `timeout`; the client waits CLIENT_TIMEOUT_SECONDS.
WITHHOLD_SECONDS = CLIENT_TIMEOUT_SECONDS + 0.7


def reserved(sandbox) -> int:
    return sandbox.admin.quota(quota_id=QUOTA_ID)["reserved_fen"]


def attempts(key: str) -> list[tuple]:
    return list(BudgetMessage.objects.filter(key=key).order_by("id").values_list("attempt", "outcome", "http_status"))


def test_soap_fault_is_terminal_and_applies_nothing(budget, sandbox):
    sandbox.admin.set_fault("fault", operation="SubmitVoucher", count=1)
    v = voucher()
    with pytest.raises(BudgetFault) as fault:
        budget.submit_voucher(v)
    assert fault.value.code == "INJECTED_FAULT" and "nothing was applied" in str(fault.value)
    assert attempts(v.voucher_no) == [(1, "fault", 500)]  # not retried
    assert budget.voucher_status(v.voucher_no).state == VoucherState.NOT_FOUND
    assert reserved(sandbox) == 0
    assert budget.submit_voucher(v).accepted  # the switch was for one call only


def test_fault_switch_only_hits_its_operation(budget, sandbox):
    sandbox.admin.set_fault("fault", operation="ReportPayment", count=1)
    v = voucher()
    assert budget.submit_voucher(v).accepted
    with pytest.raises(BudgetFault):
        budget.report_payment(report(v))
    assert budget.report_payment(report(v)).accepted


def test_timeout_after_apply_then_retry_gets_the_duplicate_ack(budget, sandbox):
    sandbox.admin.set_fault("timeout", operation="SubmitVoucher", count=1, sleep_seconds=WITHHOLD_SECONDS)
    v = voucher()
    ack = budget.submit_voucher(v)
    assert ack.accepted and ack.duplicate  # the first attempt was applied; the retry read the dedupe table
    assert reserved(sandbox) == v.amount_fen
    assert attempts(v.voucher_no) == [(1, "unavailable", None), (2, "ok", 200)]
    first = BudgetMessage.objects.get(key=v.voucher_no, attempt=1)
    assert "no answer within 0.5 s" in first.error_text and first.duration_ms >= 450


def test_timeout_on_every_attempt_raises_unavailable_and_status_tells_the_truth(budget, sandbox):
    sandbox.admin.set_fault("timeout", operation="SubmitVoucher", count=3, sleep_seconds=WITHHOLD_SECONDS)
    v = voucher()
    with pytest.raises(BudgetUnavailable) as unknown:
        budget.submit_voucher(v)
    assert "after 3 attempt(s)" in str(unknown.value)
    assert attempts(v.voucher_no) == [(1, "unavailable", None), (2, "unavailable", None), (3, "unavailable", None)]
    assert budget.voucher_status(v.voucher_no).state == VoucherState.ACCEPTED
    assert reserved(sandbox) == v.amount_fen  # three deliveries, one reservation


def test_timeout_before_apply_applies_late_and_once(budget, sandbox):
    late = 3 * CLIENT_TIMEOUT_SECONDS + 1.0  # the first delivery lands after the client gave up on all three
    sandbox.admin.set_fault("timeout", operation="SubmitVoucher", count=3, phase="before_apply", sleep_seconds=late)
    v = voucher()
    with pytest.raises(BudgetUnavailable):
        budget.submit_voucher(v)
    assert budget.voucher_status(v.voucher_no).state == VoucherState.NOT_FOUND  # not yet: still on its way
    deadline = time.monotonic() + 5
    while budget.voucher_status(v.voucher_no).state == VoucherState.NOT_FOUND:
        assert time.monotonic() < deadline, "the late deliveries never arrived"
        time.sleep(0.1)
    time.sleep(2 * CLIENT_TIMEOUT_SECONDS + 0.3)  # let the two later deliveries land too
    assert reserved(sandbox) == v.amount_fen
    assert sandbox.admin.counts()["vouchers"] == 1


def test_lost_reply_is_retried_and_answered_from_the_dedupe_table(budget, sandbox):
    sandbox.admin.set_fault("lost_reply", operation="SubmitVoucher", count=1)
    v = voucher()
    ack = budget.submit_voucher(v)
    assert ack.accepted and ack.duplicate
    assert reserved(sandbox) == v.amount_fen
    assert attempts(v.voucher_no) == [(1, "unavailable", 502), (2, "ok", 200)]
    lost = BudgetMessage.objects.get(key=v.voucher_no, attempt=1)
    assert "HTTP 502" in lost.error_text


def test_lost_reply_on_a_report_applies_it_once(budget, sandbox):
    v = voucher()
    budget.submit_voucher(v)
    sandbox.admin.set_fault("lost_reply", operation="ReportPayment", count=1)
    ack = budget.report_payment(report(v))
    assert ack.accepted and ack.duplicate
    q = sandbox.admin.quota(quota_id=QUOTA_ID)
    assert (q["used_fen"], q["reserved_fen"]) == (v.amount_fen, 0)


def test_duplicate_ack_is_the_original_answer(budget, sandbox):
    sandbox.admin.set_fault("duplicate_ack", operation="SubmitVoucher", count=1)
    v = voucher()
    ack = budget.submit_voucher(v)
    assert ack.accepted and ack.duplicate
    assert reserved(sandbox) == v.amount_fen
    assert attempts(v.voucher_no) == [(1, "ok", 200)]


def test_wrong_api_key_is_a_fault(sandbox, db):
    client = SoapBudgetClient(url=sandbox.url, api_key="wrong", timeout_seconds=2, retries=2, max_bytes=10**6,
                              backoff_seconds=0.01)
    with pytest.raises(BudgetFault) as fault:
        client.query_quotas()
    assert fault.value.code == "UNAUTHORIZED"
    assert BudgetMessage.objects.filter(outcome="fault").count() == 1


def test_nobody_listening_is_unavailable_after_the_retries(db):
    client = SoapBudgetClient(url="http://127.0.0.1:9/", api_key="k", timeout_seconds=1, retries=2, max_bytes=10**6,
                              backoff_seconds=0.01)
    with pytest.raises(BudgetUnavailable):
        client.voucher_status("V1")
    assert list(BudgetMessage.objects.values_list("attempt", "outcome")) == [
        (3, "unavailable"), (2, "unavailable"), (1, "unavailable")]


class _HostileReplies(http.server.BaseHTTPRequestHandler):
    """A stand-in budget system answering every POST with `reply` (set per test)."""

    reply: bytes = b""
    status = 200

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(self.status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(self.reply)))
        self.end_headers()
        self.wfile.write(self.reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HostileReplies)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("reply, reason", [
    (b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&x;</soap:Body></soap:Envelope>',
     "doctype_forbidden"),
    (b"<soap:Envelope", "malformed"),
    (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
     b'<QueryVoucherStatusResponse xmlns="urn:ecny-treasury:budget:v1"><VoucherNo>V1</VoucherNo>'
     b"<State>paid_twice</State></QueryVoucherStatusResponse></soap:Body></soap:Envelope>", "schema_invalid"),
])
def test_hostile_or_broken_replies_are_unavailable_and_never_read(hostile_server, db, reply, reason):
    _HostileReplies.reply = reply
    client = SoapBudgetClient(url=f"http://127.0.0.1:{hostile_server.server_port}/", api_key="k", timeout_seconds=2,
                              retries=1, max_bytes=10**6, backoff_seconds=0.01)
    with pytest.raises(BudgetUnavailable) as unknown:
        client.voucher_status("V1")
    assert reason in str(unknown.value) and "root:" not in str(unknown.value)
    assert BudgetMessage.objects.filter(outcome="unavailable").count() == 2


def test_oversized_reply_is_refused(hostile_server, db):
    _HostileReplies.reply = b"<a>" + b"x" * 2000 + b"</a>"
    client = SoapBudgetClient(url=f"http://127.0.0.1:{hostile_server.server_port}/", api_key="k", timeout_seconds=2,
                              retries=0, max_bytes=1000, backoff_seconds=0.01)
    with pytest.raises(BudgetUnavailable) as unknown:
        client.voucher_status("V1")
    assert "oversized" in str(unknown.value)


def test_a_quota_listed_twice_is_an_unreadable_reply_not_two_quotas(hostile_server, db, settings):
    """The same quota id twice in one QueryQuotas answer: refused as not valid (the schema keeps a quota once), so the
    synchronisation says the budget system's answer could not be read instead of failing on our own unique key."""
    from django.utils import timezone

    from adapters.budget import messages
    from adapters.budget.client import get_budget_client
    from adapters.budget.interface import QuotaInfo
    from fiscal_disbursement import services
    from fiscal_disbursement.models import Quota

    quota = QuotaInfo(quota_id="ZB2026-0009", adm_div_code="370100", fiscal_year=2026, agency_code="101001",
                      agency_name="示范市民政局", exp_func_code="2080505", exp_eco_code="30305", fund_type_code="1",
                      pay_type_code="1", amount_fen=100_00, used_fen=0, reserved_fen=0, available_fen=100_00)
    _HostileReplies.reply = messages.quotas_body([quota, quota])
    settings.BUDGET_SYSTEM_URL = f"http://127.0.0.1:{hostile_server.server_port}/"
    settings.BUDGET_SYSTEM_RETRIES = 0
    get_budget_client.cache_clear()
    try:
        with pytest.raises(BudgetUnavailable) as unreadable:
            services.sync_quotas(now=timezone.now())
    finally:
        get_budget_client.cache_clear()
    assert "schema_invalid" in str(unreadable.value) and "ZB2026-0009" in str(unreadable.value)
    assert not Quota.objects.exists()
