"""Raw SOAP posted to the sandbox budget system: hostile, oversized or invalid XML is a SOAP fault
with a clear code, and nothing is applied."""
import pytest
import requests
from lxml import etree

from adapters.budget import messages as m
from adapters.budget.sandbox.server import start_in_thread
from tests.adapters.budget.conftest import QUOTA, voucher

SOAP_ACTION = '"urn:ecny-treasury:budget:v1:SubmitVoucher"'


def post(sandbox, body: bytes, *, api_key: str, action: str = SOAP_ACTION):
    return requests.post(sandbox.url, data=body, timeout=10, headers={
        "Authorization": f"Bearer {api_key}", "Content-Type": "text/xml; charset=utf-8", "SOAPAction": action})


def fault_of(response) -> tuple[str, str, str]:
    assert response.status_code == 500
    fault = m.read_envelope(response.content, max_bytes=10**6, expected=())
    assert isinstance(fault, m.SoapFault)
    return fault.faultcode, fault.code, fault.message


@pytest.fixture
def sandbox(budget_sandbox):
    budget_sandbox.admin.create_quota(**QUOTA)
    return budget_sandbox


def _voucher_with_prolog(prolog: str, entity_ref: str) -> bytes:
    body = m.submit_voucher_body(voucher()).decode()
    body = body.replace('<?xml version="1.0" encoding="UTF-8"?>\n', '<?xml version="1.0" encoding="UTF-8"?>\n' + prolog)
    return body.replace("<PayAcctName>", f"<PayAcctName>{entity_ref}", 1).encode()


def assert_nothing_applied(sandbox):
    counts = sandbox.admin.counts()
    assert (counts["vouchers"], counts["voucher_lines"], counts["reports"]) == (0, 0, 0)
    assert sandbox.admin.quota(quota_id=QUOTA["quota_id"])["reserved_fen"] == 0


def test_xxe_is_a_fault_and_the_file_is_never_read(sandbox, settings, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-42")
    body = _voucher_with_prolog(f'<!DOCTYPE e [<!ENTITY s SYSTEM "file://{secret}">]>\n', "&s;")
    faultcode, code, message = fault_of(post(sandbox, body, api_key=settings.BUDGET_SYSTEM_API_KEY))
    assert (faultcode, code) == ("soap:Client", "DOCTYPE_FORBIDDEN") and "DOCTYPE" in message
    assert "TOP-SECRET" not in message
    assert_nothing_applied(sandbox)


def test_billion_laughs_is_a_fault(sandbox, settings):
    entities = '<!ENTITY a "ha">' + "".join(f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">'
                                             for n in range(8))
    body = _voucher_with_prolog(f"<!DOCTYPE e [{entities}]>\n", "&i;")
    assert fault_of(post(sandbox, body, api_key=settings.BUDGET_SYSTEM_API_KEY))[1] == "DOCTYPE_FORBIDDEN"
    assert_nothing_applied(sandbox)


def test_oversized_request_is_a_fault_unread(settings, tmp_path):
    handle = start_in_thread(storage_path=str(tmp_path / "small.sqlite3"), api_key=settings.BUDGET_SYSTEM_API_KEY,
                             max_bytes=4096)
    try:
        handle.admin.create_quota(**QUOTA)
        body = m.submit_voucher_body(voucher(amounts=tuple(range(1, 200))))
        assert len(body) > 4096
        _, code, message = fault_of(post(handle, body, api_key=settings.BUDGET_SYSTEM_API_KEY))
        assert code == "OVERSIZED" and "4,096" in message
        assert_nothing_applied(handle)
    finally:
        handle.stop()


@pytest.mark.parametrize("body, code", [
    (b"<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body>", "MALFORMED"),
    (b"<Envelope/>", "SCHEMA_INVALID"),
    (m.envelope('<SubmitVoucherRequest xmlns="urn:ecny-treasury:budget:v1"><Voucher><VoucherNo>V1</VoucherNo>'
                "</Voucher></SubmitVoucherRequest>"), "SCHEMA_INVALID"),
    (m.envelope('<Transfer xmlns="urn:ecny-treasury:budget:v1"/>'), "SCHEMA_INVALID"),
])
def test_malformed_or_schema_invalid_requests_are_faults(sandbox, settings, body, code):
    assert fault_of(post(sandbox, body, api_key=settings.BUDGET_SYSTEM_API_KEY))[1] == code
    assert_nothing_applied(sandbox)


def test_schema_fault_names_the_line_and_field(sandbox, settings):
    body = m.submit_voucher_body(voucher()).replace(b"<PayAmt>100.00</PayAmt>", b"<PayAmt>100.5</PayAmt>")
    _, code, message = fault_of(post(sandbox, body, api_key=settings.BUDGET_SYSTEM_API_KEY))
    assert code == "SCHEMA_INVALID" and "PayAmt" in message and "line 2" in message
    assert_nothing_applied(sandbox)


def test_wrong_key_and_mismatched_action_are_faults(sandbox, settings):
    body = m.submit_voucher_body(voucher())
    assert fault_of(post(sandbox, body, api_key="wrong"))[1] == "UNAUTHORIZED"
    mismatch = post(sandbox, body, api_key=settings.BUDGET_SYSTEM_API_KEY,
                    action='"urn:ecny-treasury:budget:v1:ReportPayment"')
    assert fault_of(mismatch)[1] == "SOAP_ACTION_MISMATCH"
    assert_nothing_applied(sandbox)


def test_voucher_type_not_matching_payment_type_is_a_fault(sandbox, settings):
    body = m.submit_voucher_body(voucher()).replace(b"<VtCode>5201</VtCode>", b"<VtCode>8202</VtCode>")
    assert fault_of(post(sandbox, body, api_key=settings.BUDGET_SYSTEM_API_KEY))[1] == "BAD_REQUEST"
    assert_nothing_applied(sandbox)


def test_duplicate_tracking_id_in_a_voucher_is_a_fault(sandbox, settings):
    v = voucher()
    body = m.submit_voucher_body(v).replace(v.details[1].tracking_id.encode(), v.details[0].tracking_id.encode())
    assert fault_of(post(sandbox, body, api_key=settings.BUDGET_SYSTEM_API_KEY))[1] == "DUPLICATE_TRACKING_ID"
    assert_nothing_applied(sandbox)


def test_a_valid_raw_request_is_applied(sandbox, settings):
    response = post(sandbox, m.submit_voucher_body(voucher()), api_key=settings.BUDGET_SYSTEM_API_KEY)
    assert response.status_code == 200
    assert etree.fromstring(response.content).findtext(".//{urn:ecny-treasury:budget:v1}Accepted") == "true"
    assert sandbox.admin.counts()["voucher_lines"] == 2
