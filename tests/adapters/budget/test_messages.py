"""The documents: the WSDL zeep reads, the bodies written from text templates are the same documents zeep
would read from that WSDL, amounts are exact, and the sandbox serves its WSDL pointing at itself."""
import pytest
import requests
import zeep
from lxml import etree

from adapters.budget import messages as m
from adapters.budget.client import wsdl_client
from adapters.xml import SCHEMA_INVALID, XmlRefused, validate
from tests.adapters.budget.conftest import SETTLED_AT, report, voucher


def test_zeep_reads_the_wsdl_in_the_repo():
    binding = wsdl_client().wsdl.services["BudgetService"].ports["BudgetPort"].binding
    assert set(binding.all()) == set(m.OPERATIONS)
    assert binding.get("SubmitVoucher").soapaction == "urn:ecny-treasury:budget:v1:SubmitVoucher"


def test_sandbox_serves_its_wsdl_pointing_at_itself(budget_sandbox):
    wsdl = requests.get(budget_sandbox.url + "?wsdl", timeout=5)
    assert wsdl.status_code == 200
    address = etree.fromstring(wsdl.content).find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address.get("location") == budget_sandbox.url
    client = zeep.Client(budget_sandbox.url + "?wsdl")  # fetches budget.xsd from the sandbox too
    assert client.service._binding_options["address"] == budget_sandbox.url


def _zeep_reads(operation: str, body: bytes):
    binding = wsdl_client().wsdl.services["BudgetService"].ports["BudgetPort"].binding
    return binding.get(operation).input.deserialize(etree.fromstring(body))


def test_template_voucher_is_what_zeep_reads_from_the_wsdl():
    v = voucher(amounts=(1, 99, 100_000_000_00))
    body = m.submit_voucher_body(v)
    m.read_envelope(body, max_bytes=10**6, expected=(m.request_tag("SubmitVoucher"),))  # XSD-valid
    read = _zeep_reads("SubmitVoucher", body)
    assert (read.VoucherNo, read.VtCode, read.PayAmt, read.StYear) == (v.voucher_no, "5201", "100000001.00", 2026)
    assert [(d.TrackingID, d.PayAmt) for d in read.DetailList.Detail] == [
        (v.details[0].tracking_id, "0.01"), (v.details[1].tracking_id, "0.99"),
        (v.details[2].tracking_id, "100000000.00")]


def test_template_report_is_what_zeep_reads_from_the_wsdl():
    r = report(voucher(), returned=(1,))
    body = m.report_payment_body(r)
    m.read_envelope(body, max_bytes=10**6, expected=(m.request_tag("ReportPayment"),))
    read = _zeep_reads("ReportPayment", body)
    paid, returned = read["DetailList"]["Detail"]
    assert read["ReportNo"] == r.report_no and paid["XPayDate"] == SETTLED_AT and paid["PayStatus"] == "paid"
    assert returned["XAddWord"] == r.lines[1].return_reason and returned["XPayDate"] is None


def test_voucher_fields_and_amounts_survive_the_round_trip():
    v = voucher(amounts=(1, 99, 100_000_000_00))
    header, rows = m.voucher_rows(m.read_envelope(m.submit_voucher_body(v), max_bytes=10**6,
                                                  expected=(m.request_tag("SubmitVoucher"),)))
    assert header["PayAmt"] == "100000001.00" and header["PayAmtFen"] == v.amount_fen
    assert header["VtCode"] == "5201" and header["QuotaID"] == v.quota_id
    assert [r[4] for r in rows] == [1, 99, 100_000_000_00]
    assert [r[0] for r in rows] == [d.tracking_id for d in v.details]
    assert rows[0][5] == "生活补助" and rows[1][5] == ""


def test_report_fields_survive_the_round_trip():
    r = report(voucher(), returned=(1,))
    report_no, voucher_no, rows = m.report_rows(m.read_envelope(m.report_payment_body(r), max_bytes=10**6,
                                                                expected=(m.request_tag("ReportPayment"),)))
    assert (report_no, voucher_no) == (r.report_no, r.voucher_no)
    assert rows[0][1:] == ("paid", 100_00, "2026-03-02T10:00:00+08:00", "EC00000000000000", "")
    assert rows[1][1:] == ("returned", 250_50, "", "", "收款钱包已注销 (payee wallet closed)")
    assert m.read_payment_report(m.read_envelope(m.report_payment_body(r), max_bytes=10**6,
                                                 expected=(m.request_tag("ReportPayment"),))) == r


def test_markup_in_names_is_escaped_not_injected():
    v = voucher()
    hostile = v.details[0].__class__(**{**v.details[0].__dict__, "payee_name": "张<三>&</PayeeAcctName><X>"})
    v = voucher(details=(hostile,), amounts=(hostile.amount_fen,))
    payload = m.read_envelope(m.submit_voucher_body(v), max_bytes=10**6, expected=(m.request_tag("SubmitVoucher"),))
    assert m.voucher_rows(payload)[1][0][1] == "张<三>&</PayeeAcctName><X>"


@pytest.mark.parametrize("bad, error", [(1.5, TypeError), (-1, ValueError)])
def test_amounts_must_be_int_fen_before_anything_is_sent(bad, error):
    with pytest.raises(error):
        m.submit_voucher_body(voucher(amounts=(100, bad)))


def test_control_characters_are_refused_before_sending():
    v = voucher()
    with pytest.raises(ValueError):
        m.submit_voucher_body(voucher(purpose="补助\x01"))
    with pytest.raises(ValueError):
        m.submit_voucher_body(voucher(details=(v.details[0].__class__(**{**v.details[0].__dict__,
                                                                          "payee_name": "a\x00b"}),)))


def test_zero_amount_detail_is_schema_invalid():
    body = m.submit_voucher_body(voucher(amounts=(0, 100)))
    with pytest.raises(XmlRefused) as refused:
        m.read_envelope(body, max_bytes=10**6, expected=(m.request_tag("SubmitVoucher"),))
    assert refused.value.code == SCHEMA_INVALID and "PayAmt" in str(refused.value)


def _quota(**changes):
    from adapters.budget.interface import QuotaInfo

    fields = dict(quota_id="Q" * 40, adm_div_code="350100", fiscal_year=2026, agency_code="A" * 20, agency_name="某单位",
                  exp_func_code="2080505", exp_eco_code="30305", fund_type_code="1", pay_type_code="1",
                  amount_fen=100_00, used_fen=0, reserved_fen=0, available_fen=100_00)
    return QuotaInfo(**{**fields, **changes})


@pytest.mark.parametrize("changes", [{"quota_id": "Q" * 41}, {"agency_code": "A" * 21}])
def test_a_quota_the_service_cannot_store_is_schema_invalid(changes):
    """The service keeps a quota id in 40 characters and a budget unit code in 20: a longer one was read, and
    storing it failed on PostgreSQL (value too long), so one such quota stopped the whole quota sync with an error."""
    expected = (m.response_tag(m.QUERY_QUOTAS),)
    (read,) = m.read_quotas(m.read_envelope(m.quotas_body([_quota()]), max_bytes=10 ** 6, expected=expected))
    assert (read.quota_id, read.agency_code) == ("Q" * 40, "A" * 20)  # at the limits
    with pytest.raises(XmlRefused) as refused:
        m.read_envelope(m.quotas_body([_quota(**changes)]), max_bytes=10 ** 6, expected=expected)
    assert refused.value.code == SCHEMA_INVALID


def test_yuan_text_is_exact_without_floats():
    assert m.yuan_text_to_fen("12345678901234.56") == 1234567890123456
    assert m.fen_to_yuan_text(1234567890123456) == "12345678901234.56"
    assert m.fen_to_yuan_text(5) == "0.05"
    with pytest.raises(ValueError):
        m.yuan_text_to_fen("1.5")


def test_fault_detail_is_valid_against_the_schema():
    fault = m.read_envelope(m.fault_body(client_error=True, code="SCHEMA_INVALID", message="x" * 900),
                            max_bytes=10**6, expected=())
    assert fault == m.SoapFault(faultcode="soap:Client", code="SCHEMA_INVALID", message="x" * 500)
    detail = etree.fromstring(m.fault_body(client_error=False, code="X", message="y")).find(".//{%s}FaultDetail" % m.NS)
    validate(detail, schema=m.XSD_PATH)


@pytest.mark.parametrize("field, code", [("exp_func_code", "208"), ("exp_func_code", "20805"),
                                         ("exp_func_code", "2080505"), ("exp_eco_code", "301"),
                                         ("exp_eco_code", "30101")])
def test_classification_codes_of_each_level_are_valid(field, code):
    """功能分类 has three levels (类 3 digits, 款 5, 项 7: 2080505), 经济分类 two (类 3, 款 5: 30101)."""
    body = m.submit_voucher_body(voucher(**{field: code}))
    m.read_envelope(body, max_bytes=10**6, expected=(m.request_tag("SubmitVoucher"),))


@pytest.mark.parametrize("field, code, element", [
    ("exp_func_code", "2080", "ExpFuncCode"), ("exp_func_code", "208050", "ExpFuncCode"),
    ("exp_eco_code", "3010", "GovExpEcoCode"),
])
def test_classification_codes_between_levels_are_schema_invalid(field, code, element):
    """A 4- or 6-digit functional code, or a 4-digit economic one, is no level of the classification."""
    body = m.submit_voucher_body(voucher(**{field: code}))
    with pytest.raises(XmlRefused) as refused:
        m.read_envelope(body, max_bytes=10**6, expected=(m.request_tag("SubmitVoucher"),))
    assert refused.value.code == SCHEMA_INVALID and element in str(refused.value)
