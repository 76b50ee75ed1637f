"""Throughput of the budget-system adapter: python bench/budget.py [--details 50000] [--vouchers 1]

Measures, in the same run:
1. baseline, no HTTP: the same SubmitVoucher and ReportPayment documents written by
   `adapters.budget.messages`, then read back as the receiving side does (hardened parse, XSD
   validation, rows);
2. for comparison, zeep serialising the same voucher from the WSDL (why the large bodies are not
   built by zeep; --no-zeep skips it);
3. end to end: `SoapBudgetClient.submit_voucher` then `report_payment` (every line, 1 in 10
   returned) over HTTP to the sandbox budget system running as its own process
   (`manage.py run_budget_sandbox`), or in this process with --in-thread; with each attempt's bodies
   compressed for the message log as `record_message` does (--log db writes the rows too: needs a
   migrated database).
Each measurement runs --repeat times (new voucher numbers each time) and the best is printed: the
machine is shared, and the best run is the one least disturbed. Checks that every voucher was accepted and reported, and that the quota's used amount is exactly
what was paid with nothing left reserved. Prints vouchers/s and details/s (a detail counted once
for its voucher and once for its result) beside the baseline.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path

import production  # noqa: F401  (DJANGO_DEBUG=0, throwaway secrets; bench/ is on sys.path)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _setup_django():
    sys.path.insert(0, str(PROJECT_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _documents(*, run: str, number: int, details: int, quota: dict):
    from adapters.budget.interface import PaymentLineResult, PaymentReport, Voucher, VoucherDetail

    voucher_no = f"BV{run}{number:05d}"
    lines = tuple(VoucherDetail(tracking_id=f"{voucher_no}-{n:06d}", payee_name=f"收款人{n}",
                                payee_acct_no=f"002{n:013d}", payee_bank_no="102100099996",
                                amount_fen=100_00 + n % 500, purpose="2026年3月生活补助") for n in range(details))
    voucher = Voucher(voucher_no=voucher_no, vou_date=dt.date(2026, 3, 2), fiscal_year=quota["fiscal_year"],
                      adm_div_code=quota["adm_div_code"], pay_type_code=quota["pay_type_code"], bill_no=f"BB{run}{number:05d}",
                      agency_code=quota["agency_code"], agency_name=quota["agency_name"], quota_id=quota["quota_id"],
                      exp_func_code=quota["exp_func_code"], exp_eco_code=quota["exp_eco_code"],
                      fund_type_code=quota["fund_type_code"], pay_acct_no="0010000000000001",
                      pay_acct_name="某市财政局零余额账户", amount_fen=sum(d.amount_fen for d in lines),
                      purpose="生活补助", details=lines)
    settled = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.timezone.utc)
    results = tuple(
        PaymentLineResult(tracking_id=d.tracking_id, status="paid", amount_fen=d.amount_fen,
                          paid_at=settled + dt.timedelta(milliseconds=n), agent_business_no=f"EC{n:014d}")
        if n % 10 else
        PaymentLineResult(tracking_id=d.tracking_id, status="returned", amount_fen=d.amount_fen,
                          return_reason="收款钱包已注销 (payee wallet closed)")
        for n, d in enumerate(lines))
    report = PaymentReport(report_no=f"BR{run}{number:05d}", voucher_no=voucher_no, lines=results)
    paid = sum(r.amount_fen for r in results if r.status == "paid")
    return voucher, report, paid


def bench_baseline(vouchers: list, reports: list) -> float:
    from adapters.budget import messages as m

    started = time.perf_counter()
    for voucher, report in zip(vouchers, reports):
        payload = m.read_envelope(m.submit_voucher_body(voucher), max_bytes=1 << 30,
                                  expected=(m.request_tag(m.SUBMIT_VOUCHER),))
        m.voucher_rows(payload)
        payload = m.read_envelope(m.report_payment_body(report), max_bytes=1 << 30,
                                  expected=(m.request_tag(m.REPORT_PAYMENT),))
        m.report_rows(payload)
    return time.perf_counter() - started


def bench_zeep(voucher) -> float:
    from lxml import etree

    from adapters.budget.client import wsdl_client
    from adapters.budget.messages import fen_to_yuan_text

    client = wsdl_client()
    data = {
        "VoucherNo": voucher.voucher_no, "AdmDivCode": voucher.adm_div_code, "StYear": voucher.fiscal_year,
        "VtCode": voucher.vt_code, "VouDate": voucher.vou_date, "BillNo": voucher.bill_no,
        "AgencyCode": voucher.agency_code, "AgencyName": voucher.agency_name, "QuotaID": voucher.quota_id,
        "FundTypeCode": voucher.fund_type_code, "PayTypeCode": voucher.pay_type_code,
        "ExpFuncCode": voucher.exp_func_code, "GovExpEcoCode": voucher.exp_eco_code, "PayAcctNo": voucher.pay_acct_no,
        "PayAcctName": voucher.pay_acct_name, "PaySummaryName": voucher.purpose,
        "PayAmt": fen_to_yuan_text(voucher.amount_fen),
        "DetailList": {"Detail": [{"TrackingID": d.tracking_id, "PayeeAcctName": d.payee_name,
                                   "PayeeAcctNo": d.payee_acct_no, "PayeeAcctBankNo": d.payee_bank_no,
                                   "PayAmt": fen_to_yuan_text(d.amount_fen), "PaySummaryName": d.purpose}
                                  for d in voucher.details]},
    }
    started = time.perf_counter()
    envelope = client.create_message(client.service, "SubmitVoucher", Voucher=data)
    etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return time.perf_counter() - started


def _memory_recorder(**entry):
    """What record_message costs without the database: the bodies compressed as stored."""
    stored = entry.get("stored_request") or (zlib.compress(entry["request_body"], 1), "zlib")
    zlib.compress(entry["response_body"] or b"", 1)
    return stored


def start_sandbox(*, storage: str, in_thread: bool):
    from django.conf import settings

    if in_thread:
        from adapters.budget.sandbox.server import start_in_thread

        handle = start_in_thread(storage_path=storage, api_key=settings.BUDGET_SYSTEM_API_KEY,
                                 max_bytes=settings.BUDGET_MESSAGE_MAX_BYTES)
        return handle.url, handle.stop
    from adapters.sandbox_common.server import start_process

    return start_process([sys.executable, "manage.py", "run_budget_sandbox", "--storage", storage], cwd=PROJECT_ROOT,
                         path="/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--details", type=int, default=50_000, help="details per voucher")
    parser.add_argument("--vouchers", type=int, default=1)
    parser.add_argument("--in-thread", action="store_true", help="run the sandbox in this process")
    parser.add_argument("--log", choices=("memory", "db"), default="memory",
                        help="message log: bodies compressed only (memory) or written to the database (db)")
    parser.add_argument("--no-zeep", action="store_true", help="skip measuring zeep's serialisation")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best is printed")
    args = parser.parse_args()
    _setup_django()
    from django.conf import settings

    from adapters.budget.client import SoapBudgetClient
    from adapters.budget.sandbox.admin import BudgetSandboxAdminClient

    run = uuid.uuid4().hex[:6]
    quota = {"quota_id": f"BENCH-{run}", "adm_div_code": "320100", "fiscal_year": 2026, "agency_code": "101001",
             "agency_name": "市民政局", "exp_func_code": "2089999", "exp_eco_code": "30305", "fund_type_code": "1",
             "pay_type_code": "1", "amount_fen": 10**15, "purpose": "bench"}
    rounds = []
    for repeat in range(args.repeat):
        documents = [_documents(run=f"{run}{repeat}", number=n, details=args.details, quota=quota)
                     for n in range(args.vouchers)]
        rounds.append(([d[0] for d in documents], [d[1] for d in documents], sum(d[2] for d in documents)))
    details_moved = 2 * args.details * args.vouchers

    baseline = min(bench_baseline(vouchers, reports) for vouchers, reports, _ in rounds)
    zeep_seconds = None if args.no_zeep else bench_zeep(rounds[0][0][0])

    with tempfile.TemporaryDirectory(prefix="bench-budget-") as directory:
        url, stop = start_sandbox(storage=os.path.join(directory, "budget.sqlite3"), in_thread=args.in_thread)
        admin = BudgetSandboxAdminClient(url, settings.BUDGET_SYSTEM_API_KEY)
        try:
            admin.create_quotas([quota])
            recorder = None if args.log == "db" else _memory_recorder
            client = SoapBudgetClient(url=url, api_key=settings.BUDGET_SYSTEM_API_KEY, timeout_seconds=60,
                                      retries=0, max_bytes=settings.BUDGET_MESSAGE_MAX_BYTES, recorder=recorder)
            best = None
            for vouchers, reports, _paid in rounds:
                started = time.perf_counter()
                submit_seconds = 0.0
                for voucher, report in zip(vouchers, reports):
                    t = time.perf_counter()
                    ack = client.submit_voucher(voucher)
                    submit_seconds += time.perf_counter() - t
                    assert ack.accepted and not ack.duplicate, ack
                    ack = client.report_payment(report)
                    assert ack.accepted and not ack.duplicate, ack
                elapsed = time.perf_counter() - started
                if best is None or elapsed < best[0]:
                    best = (elapsed, submit_seconds)
                for voucher in vouchers:
                    assert client.voucher_status(voucher.voucher_no).state == "reported"
            elapsed, submit_seconds = best
            figures = admin.quota(quota_id=quota["quota_id"])
            paid_total = sum(paid for _v, _r, paid in rounds)
            assert figures["used_fen"] == paid_total and figures["reserved_fen"] == 0, figures
            client.close()
        finally:
            admin.close()
            stop()

    where = "in this process" if args.in_thread else "own process"
    print(f"{args.vouchers} voucher(s) of {args.details:,} details, submitted and reported (1 in 10 returned); "
          f"quota used = paid, nothing reserved; best of {args.repeat}")
    print(f"  baseline, write + hardened read of the same documents, no HTTP: {baseline:6.2f} s"
          f"  {details_moved / baseline:10,.0f} details/s")
    if zeep_seconds is not None:
        print(f"  zeep serialising one voucher (not used for vouchers and reports): {zeep_seconds:6.2f} s")
    print(f"  end to end over HTTP, sandbox {where}, log {args.log}:      {elapsed:6.2f} s"
          f"  {details_moved / elapsed:10,.0f} details/s  {args.vouchers / elapsed:6.2f} vouchers/s"
          f"  (submit {submit_seconds:.2f} s, report {elapsed - submit_seconds:.2f} s)")
    print(f"  ratio end to end / baseline: {elapsed / baseline:.2f}")


if __name__ == "__main__":
    main()
