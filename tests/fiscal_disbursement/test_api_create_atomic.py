"""A request made through the API with its payee file is one step: when the answer is not 201 (the file is not a
payee spreadsheet at all: 400; the operator cannot check the wallets now: 503) no draft is left behind. It was,
unnamed by the answer, and every retry left another."""
from adapters.ecny.client import get_operator_client
from fiscal_disbursement.models import PaymentRequest
from tests.clients import api_as
from tests.fiscal_disbursement.helpers import QUOTA_ID, payee_csv, payee_rows
from tests.fiscal_disbursement.test_pages_api import API, upload
from treasury.trace.models import TraceEvent


def _create(clerk, file):
    return clerk.post(f"{API}/requests/", {"quota_id": QUOTA_ID, "pay_type": "1", "title": "2026年冬季取暖补贴",
                                           "file": file}, format="multipart")


def test_a_file_that_is_not_a_spreadsheet_leaves_no_draft(finance):
    clerk = api_as(finance.clerk)
    events = TraceEvent.objects.count()
    for _ in range(2):  # a client retrying
        answer = _create(clerk, upload(b"%PDF-1.4 not a payee file", "收款人.csv"))
        assert answer.status_code == 400 and answer.json()["code"] == "not_a_spreadsheet"
    assert not PaymentRequest.objects.exists()
    assert TraceEvent.objects.count() == events
    assert clerk.get(f"{API}/requests/").json()["count"] == 0


def test_wallets_the_operator_cannot_check_now_leave_no_draft(finance, settings):
    rows = payee_rows(finance, 2)
    settings.ECNY_OPERATOR_URL = "http://127.0.0.1:9/"  # nobody listens
    get_operator_client.cache_clear()
    try:
        answer = _create(api_as(finance.clerk), upload(payee_csv(rows)))
        assert answer.status_code == 503 and answer.json()["code"] == "operator_unavailable"
    finally:
        get_operator_client.cache_clear()
    assert not PaymentRequest.objects.exists()
    settings.ECNY_OPERATOR_URL = finance.ecny.url
    get_operator_client.cache_clear()
    created = _create(api_as(finance.clerk), upload(payee_csv(rows)))
    assert created.status_code == 201 and created.json()["line_count"] == 2
    assert list(PaymentRequest.objects.values_list("pk", flat=True)) == [created.json()["id"]]
