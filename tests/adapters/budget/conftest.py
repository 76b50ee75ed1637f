"""Fixtures of the budget adapter tests: a sandbox budget system on a real port, a quota, a client."""
import datetime as dt
import itertools

import pytest

from adapters.budget.client import SoapBudgetClient
from adapters.budget.interface import PaymentLineResult, PaymentReport, PayType, Voucher, VoucherDetail

QUOTA_ID = "ZB2026-101001-T01"
QUOTA_AMOUNT_FEN = 1_000_000_00
QUOTA = {"quota_id": QUOTA_ID, "adm_div_code": "320100", "fiscal_year": 2026, "agency_code": "101001",
         "agency_name": "市民政局", "exp_func_code": "2089999", "exp_eco_code": "30305", "fund_type_code": "1",
         "pay_type_code": PayType.DIRECT, "amount_fen": QUOTA_AMOUNT_FEN, "purpose": "困难群众生活补助"}
# The client waits this long for an answer in tests, so timeout faults stay quick.
CLIENT_TIMEOUT_SECONDS = 0.5
SETTLED_AT = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))

_numbers = itertools.count(1)


@pytest.fixture
def sandbox(budget_sandbox):
    budget_sandbox.admin.create_quota(**QUOTA)
    return budget_sandbox


@pytest.fixture
def budget(sandbox, settings, db):
    """A client with a short timeout, two retries and a tiny backoff, logging to the test database."""
    client = SoapBudgetClient(url=sandbox.url, api_key=settings.BUDGET_SYSTEM_API_KEY,
                              timeout_seconds=CLIENT_TIMEOUT_SECONDS, retries=2,
                              max_bytes=settings.BUDGET_MESSAGE_MAX_BYTES, backoff_seconds=0.01)
    yield client
    client.close()


def voucher(*, amounts=(100_00, 250_50), voucher_no=None, **changes) -> Voucher:
    number = next(_numbers)
    voucher_no = voucher_no or f"V2026{number:08d}"
    details = tuple(VoucherDetail(tracking_id=f"{voucher_no}-{n:04d}", payee_name=f"收款人{n}",
                                  payee_acct_no=f"002{number:06d}{n:07d}", payee_bank_no="102100099996",
                                  amount_fen=amount, purpose="生活补助" if n % 2 else "")
                    for n, amount in enumerate(amounts, start=1))
    fields = dict(voucher_no=voucher_no, vou_date=dt.date(2026, 3, 2), fiscal_year=2026, adm_div_code="320100",
                  pay_type_code=PayType.DIRECT, bill_no=f"B{voucher_no}", agency_code="101001", agency_name="市民政局",
                  quota_id=QUOTA_ID, exp_func_code="2089999", exp_eco_code="30305", fund_type_code="1",
                  pay_acct_no="0010000000000001", pay_acct_name="市财政局零余额账户",
                  amount_fen=sum(amounts), purpose="2026年3月生活补助", details=details)
    fields.update(changes)
    return Voucher(**fields)


def report(v: Voucher, *, returned=(), lines=None, report_no=None) -> PaymentReport:
    """A report of every detail of `v` (or of `lines`), paid unless its index is in `returned`."""
    chosen = v.details if lines is None else lines
    results = []
    for n, d in enumerate(chosen):
        if n in returned:
            results.append(PaymentLineResult(tracking_id=d.tracking_id, status="returned", amount_fen=d.amount_fen,
                                             return_reason="收款钱包已注销 (payee wallet closed)"))
        else:
            results.append(PaymentLineResult(tracking_id=d.tracking_id, status="paid", amount_fen=d.amount_fen,
                                             paid_at=SETTLED_AT, agent_business_no=f"EC{n:014d}"))
    return PaymentReport(report_no=report_no or f"R{v.voucher_no}-{next(_numbers)}", voucher_no=v.voucher_no,
                         lines=tuple(results))
