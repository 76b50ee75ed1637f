"""The message log's pages and REST API: who sees them, filters, pagination, bodies shown with payees' names and
wallets masked, the whole exchange for auditors."""
import pytest

from adapters.budget import messagelog
from adapters.budget.messagelog import record_message, request_bytes
from adapters.budget.models import BudgetMessage
from tests import factories as f
from tests.adapters.budget.conftest import voucher

pytestmark = pytest.mark.django_db

REQUEST = (b'<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
           b'<soap:Body><QueryVoucherStatusRequest xmlns="urn:ecny-treasury:budget:v1"><VoucherNo>V1</VoucherNo>'
           b"</QueryVoucherStatusRequest></soap:Body></soap:Envelope>")


def log(**changes) -> BudgetMessage:
    entry = dict(operation="QueryVoucherStatus", key="V1", request_body=REQUEST, response_body=b"", outcome="ok",
                 code="", error_text="", http_status=200, duration_ms=3, attempt=1)
    entry.update(changes)
    record_message(**entry)
    return BudgetMessage.objects.latest("id")


@pytest.mark.parametrize("role, status, download", [
    ("finance_clerk", 200, 403), ("finance_approver", 200, 403), ("auditor", 200, 200), ("admin", 200, 200),
    ("employer_operator", 403, 403), ("tax_staff", 403, 403)])
def test_pages_are_for_finance_roles_and_auditors(client, role, status, download):
    message = log()
    client.force_login(f.make_user(role=role))
    assert client.get("/budget/messages/").status_code == status
    assert client.get(f"/budget/messages/{message.pk}/").status_code == status
    assert client.get(f"/api/v1/budget/messages/{message.pk}/").status_code == status
    assert client.get(f"/budget/messages/{message.pk}/request.xml").status_code == download  # as it travelled


def test_a_vouchers_payees_are_shown_masked_and_downloaded_whole_by_auditors(client):
    from dataclasses import replace

    from adapters.budget import messages as m

    v = voucher(amounts=(100_00,))
    v = replace(v, details=(replace(v.details[0], payee_name="张三丰", payee_acct_no="0011000000000077"),))
    body = m.submit_voucher_body(v)
    message = log(operation="SubmitVoucher", key="V-MASK", request_body=body)
    client.force_login(f.make_user(role="finance_clerk"))
    page = client.get(f"/budget/messages/{message.pk}/").content.decode()
    shown = client.get(f"/api/v1/budget/messages/{message.pk}/").json()["request_xml"]
    for text in (page, shown):
        assert "张三丰" not in text and "张*丰" in text
        assert "0011000000000077" not in text and "0011********0077" in text
    assert 'data-testid="request-download"' not in page
    client.force_login(f.make_user(role="auditor"))
    assert 'data-testid="request-download"' in client.get(f"/budget/messages/{message.pk}/").content.decode()
    assert client.get(f"/budget/messages/{message.pk}/request.xml").content == body


def test_anonymous_is_sent_to_login(client):
    response = client.get("/budget/messages/")
    assert response.status_code == 302 and "/login" in response["Location"]


def test_list_filters_and_paginates(client):
    for n in range(55):
        log(key=f"V{n:03d}")
    log(operation="SubmitVoucher", key="VX-1", outcome="refused", code="QUOTA_INSUFFICIENT")
    log(operation="SubmitVoucher", key="VX-2", outcome="unavailable", http_status=None, error_text="no answer")
    client.force_login(f.make_user(role="finance_clerk"))

    page = client.get("/budget/messages/").content.decode()
    assert page.count("data-message=") == 50 and "?page=2" in page
    assert client.get("/budget/messages/?page=2").content.decode().count("data-message=") == 7

    refused = client.get("/budget/messages/?outcome=refused").content.decode()
    assert refused.count("data-message=") == 1 and "QUOTA_INSUFFICIENT" in refused
    by_operation = client.get("/budget/messages/?operation=SubmitVoucher").content.decode()
    assert by_operation.count("data-message=") == 2
    assert client.get("/budget/messages/?key=V05").content.decode().count("data-message=") == 5
    assert "报文日志" in page


def test_detail_shows_request_and_response_pretty_printed(client):
    message = log(response_body=b'<a><b>\xe5\xbc\xa0\xe4\xb8\x89</b></a>')
    client.force_login(f.make_user(role="auditor"))
    page = client.get(f"/budget/messages/{message.pk}/").content.decode()
    assert "&lt;VoucherNo&gt;V1&lt;/VoucherNo&gt;" in page  # escaped, never rendered as markup
    assert "\n  &lt;b&gt;张三&lt;/b&gt;" in page  # re-indented
    download = client.get(f"/budget/messages/{message.pk}/request.xml")
    assert download.content == REQUEST and "attachment" in download["Content-Disposition"]
    assert client.get(f"/budget/messages/{message.pk}/other.xml").status_code == 404


def test_large_bodies_are_stored_compressed_and_whole():
    body = f"<x>{'明细' * 200_000}</x>".encode()
    message = log(request_body=body)
    assert message.request_encoding == "zlib" and len(bytes(message.request_body)) < len(body) // 20
    assert message.request_size == len(body) and request_bytes(message) == body


def test_api_lists_without_bodies_and_filters(client):
    log(key="V1")
    log(operation="SubmitVoucher", key="V2", outcome="fault", code="INJECTED_FAULT", http_status=500)
    client.force_login(f.make_user(role="finance_approver"))
    listed = client.get("/api/v1/budget/messages/?outcome=fault").json()
    assert listed["count"] == 1
    (item,) = listed["results"]
    assert (item["operation"], item["key"], item["code"]) == ("SubmitVoucher", "V2", "INJECTED_FAULT")
    assert "request_xml" not in item
    assert client.get("/api/v1/budget/messages/?outcome=nonsense").status_code == 400
    detail = client.get(f"/api/v1/budget/messages/{item['id']}/").json()
    # As the page shows it: read as XML, re-indented, masked.
    assert detail["request_xml"] == messagelog.shown_body(REQUEST)[0] and detail["request_truncated"] is False
    assert "<VoucherNo>V1</VoucherNo>" in detail["request_xml"]


def test_api_is_read_only(client):
    message = log()
    client.force_login(f.make_user(role="admin"))
    assert client.delete(f"/api/v1/budget/messages/{message.pk}/").status_code == 405
    assert client.post("/api/v1/budget/messages/", {}).status_code == 405


def test_navigation_entry_for_the_roles_that_read_it(client):
    client.force_login(f.make_user(role="finance_clerk"))
    assert 'data-nav="budget_messages"' in client.get("/budget/messages/").content.decode()
    client.force_login(f.make_user(role="employer_operator"))
    assert 'data-nav="budget_messages"' not in client.get("/").content.decode()


def test_a_real_exchange_is_logged_and_shown(client, budget_sandbox, settings):
    from adapters.budget.client import get_budget_client

    ack = get_budget_client().submit_voucher(voucher(quota_id="NO-SUCH"))
    assert ack.code == "QUOTA_NOT_FOUND"
    message = BudgetMessage.objects.get()
    assert (message.outcome, message.code, message.http_status) == ("refused", "QUOTA_NOT_FOUND", 200)
    client.force_login(f.make_user(role="auditor"))
    page = client.get(f"/budget/messages/{message.pk}/").content.decode()
    assert "QUOTA_NOT_FOUND" in page and "&lt;Accepted&gt;false&lt;/Accepted&gt;" in page
    assert settings.BUDGET_SYSTEM_API_KEY not in page


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_pages_follow_the_language(client, language):
    """The page's own words follow the language switch; operations, keys, codes and bodies are data and stay."""
    first = log(outcome="unavailable", http_status=None, error_text="no answer")
    log(attempt=2)
    client.force_login(f.make_user(role="finance_clerk"))
    client.cookies["django_language"] = language
    listed = client.get("/budget/messages/").content.decode()
    detail = client.get(f"/budget/messages/{first.pk}/").content.decode()
    empty = client.get("/budget/messages/?key=NOTHING").content.decode()
    chrome = [(listed, "<h1>Message log</h1>", "<h1>报文日志</h1>"), (listed, "2 messages", "2 条报文"),
              (listed, "Budget-management system (SOAP)", "预算管理一体化系统 (SOAP)"),
              (listed, "Voucher or report number", "凭证号/报告号"), (listed, "Request / response size", "请求/应答字节"),
              (empty, "No messages match.", "没有符合条件的报文。"),
              (detail, "Every attempt under this key:", "同一业务键的全部尝试："), (detail, "Request message", "请求报文"),
              (detail, "No response received.", "没有应答。"),
              (detail, "Names, wallets and ID numbers are masked;", "姓名、钱包和证件号码已脱敏；")]
    for page, en, zh in chrome:
        assert (en if language == "en" else zh) in page
        assert (zh if language == "en" else en) not in page
    assert "QueryVoucherStatus" in detail and "no answer" in detail
