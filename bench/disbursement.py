"""Benchmark: a fiscal disbursement of 50,000 payees from import to reported, beside baselines from the same run.

    python bench/disbursement.py [--lines 50000] [--workers 2]

End to end means: the clerk's payee file parsed and checked line by line, stored, every wallet and
holder name verified with the sandbox operator over HTTP (one call per 1,000); submitted; approved
(quota reserved, payee wallets registered, the voucher with 50,000 details sent to the sandbox
budget system over SOAP and acknowledged); paid by Celery workers on Redis (one task per chunk of
1,000 transfers, sandbox operator over HTTP, postings, trace); finished (quota consumed) and the
results reported back over SOAP in reports of 5,000 lines, all acknowledged. Then it proves it: our
quota figures equal the budget system's, every line paid once, `ledger_check` clean.
Receipts are left out (bench/receipts.py measures them).

Baselines: Python's csv module reading the same file without any check, and psycopg COPY of the
same number of rows. Needs PostgreSQL (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/ecny_bench) and Redis (BENCH_BROKER_URL, default
redis://127.0.0.1:6379/13).
"""
import argparse
import csv
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import transfers as transfer_bench  # noqa: E402  (production settings; DATABASE_URL, RECEIPTS_AUTO_ISSUE=0)

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
OPERATOR_CODE = "200"


def build_file(lines: int) -> tuple[bytes, list[tuple[str, str]]]:
    from stdnum.cn import ric

    rows, wallets = [], []
    for i in range(lines):
        base = f"110101{1950 + i % 40}{1 + i // 40 % 12:02d}{1 + i // 480 % 28:02d}{i // 13_440 % 1000:03d}"
        wallet_id = f"{OPERATOR_CODE}{i:013d}"
        rows.append([i + 1, "李四", base + ric.calc_check_digit(base + "0"), wallet_id, f"{300 + i % 200}.00",
                     "高龄津贴"])
        wallets.append((wallet_id, "李四"))
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows([["序号", "收款人", "证件号码", "钱包编号", "金额", "用途"]] + rows)
    return buffer.getvalue().encode("utf-8-sig"), wallets


def start_budget_sandbox(storage: str):
    port = transfer_bench.free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "run_budget_sandbox", "--host", "127.0.0.1", "--port", str(port),
         "--storage", storage],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "DATABASE_URL": "sqlite:///:memory:"},
    )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(100):
        try:
            transfer_bench.socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("budget sandbox did not start")


def start_workers(count: int, env: dict):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "treasury,fiscal", "--concurrency",
         str(count), "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--give-up-after", type=int, default=900, help="seconds")
    args = parser.parse_args()
    transfer_bench.ensure_database()
    storage = tempfile.mkdtemp(prefix="bench-disbursement-")
    ecny, ecny_url = transfer_bench.start_sandbox(os.path.join(storage, "operator.sqlite3"))
    budget, budget_url = start_budget_sandbox(os.path.join(storage, "budget.sqlite3"))
    os.environ.update(ECNY_OPERATOR_URL=ecny_url, BUDGET_SYSTEM_URL=budget_url, CELERY_BROKER_URL=BROKER_URL,
                      MEDIA_ROOT=os.path.join(storage, "media"))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from adapters.budget.sandbox.admin import BudgetSandboxAdminClient
    from adapters.ecny.sandbox.admin import SandboxAdminClient
    from config.celery import app as celery_app
    from fiscal_disbursement import services
    from fiscal_disbursement.models import Quota, RequestState
    from tests import factories as f
    from treasury.access import roles
    from treasury.models import LedgerAccount, Organization, TransferState, Wallet
    from treasury.services.ledger import check_ledger
    from treasury.services.wallets import register_wallet

    settings.MEDIA_ROOT = Path(storage) / "media"
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE ANY "
                       "(ARRAY['fiscal_%%', 'budget_%%', 'payroll_%%', 'treasury_%%', 'trace_%%', 'receipts_%%', "
                       "'access_%%', 'auth_user%%'])")
        tables = ", ".join(row[0] for row in cursor.fetchall())
        cursor.execute(f"TRUNCATE {tables} CASCADE")
    celery_app.control.purge()
    workers = start_workers(args.workers, dict(os.environ))
    try:
        operator_admin = SandboxAdminClient(ecny_url, settings.ECNY_OPERATOR_API_KEY)
        budget_admin = BudgetSandboxAdminClient(budget_url, settings.BUDGET_SYSTEM_API_KEY)
        operator = f.make_operator(code=OPERATOR_CODE)
        bureau = f.make_organization(org_type=Organization.Type.FINANCE_BUREAU, name="bench finance bureau")
        agency = f.make_organization(org_type=Organization.Type.BUDGET_UNIT, name="bench civil affairs", code="101001")
        payer = register_wallet(wallet_id=f"{OPERATOR_CODE}9999999999999", wallet_type=Wallet.Type.CORPORATE,
                                operator=operator, holder_org=bureau, holder_name=bureau.name,
                                account_kind=LedgerAccount.Kind.FISCAL_ZERO_BALANCE)
        operator_admin.open_wallet(wallet_id=payer.wallet_id, wallet_type="WT09", holder_name=bureau.name,
                                   balance_fen=10**13)
        clerk = f.make_user(role=roles.FINANCE_CLERK, organization=bureau)
        approvers = [f.make_user(role=roles.FINANCE_APPROVER, organization=bureau) for _ in range(2)]
        data, wallets = build_file(args.lines)
        for start in range(0, len(wallets), 10_000):
            operator_admin.open_wallets(wallets=[
                {"wallet_id": w, "wallet_type": "WT01", "wallet_class": 1, "holder_name": n}
                for w, n in wallets[start:start + 10_000]])
        budget_admin.create_quota(quota_id="BENCH-0001", adm_div_code="320100", fiscal_year=2026, agency_code="101001",
                                  agency_name=agency.name, exp_func_code="2080801", exp_eco_code="30305",
                                  fund_type_code="1", pay_type_code="1", amount_fen=10**12)
        services.sync_quotas(now=timezone.now())

        started = time.perf_counter()
        sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        csv_baseline = time.perf_counter() - started

        started = time.perf_counter()
        request = services.create_request(user=clerk, quota_id="BENCH-0001", pay_type="1", title="bench subsidy",
                                          now=timezone.now(), filename="payees.csv", data=data)
        imported = time.perf_counter()
        assert request.problem_count == 0, request.problems[:5]
        services.submit_request(request_id=request.pk, user=clerk, now=timezone.now())
        request = services.approve_request(request_id=request.pk, user=approvers[0], now=timezone.now())
        if request.state != RequestState.APPROVED:  # a large run needs a second approver
            services.approve_request(request_id=request.pk, user=approvers[1], now=timezone.now())
        approved = time.perf_counter()
        marks, cpu = {}, {}
        processes = {"Celery workers": workers.pid, "e-CNY sandbox": ecny.pid,
                     "budget sandbox": budget.pid}
        while True:  # the workers send the voucher, pay, and report; the beat's finishing step is done here
            request.refresh_from_db()
            if request.state not in marks:
                marks[request.state] = time.perf_counter()
                cpu[request.state] = transfer_bench.cpu_snapshot(processes)
            if request.state == "paying":
                request = services.finish_request_if_done(request_id=request.pk, now=timezone.now())
            if request.state in ("reported", "voucher_refused", "failed", "partially_paid", "cancelled"):
                break
            if time.perf_counter() - started > args.give_up_after:
                raise SystemExit(f"gave up waiting; request is {request.state} {request.voucher_error}")
            time.sleep(0.05)
        finished = time.perf_counter()
        marks.setdefault(request.state, finished)
    finally:
        workers.terminate()
        workers.wait()
        for proc in (ecny, budget):
            proc.terminate()
            proc.wait()
    copy_baseline = transfer_bench.copy_baseline(args.lines)
    total = finished - started
    paying_started = marks.get("paying", approved)
    reporting_started = marks.get("reporting", finished)
    print(f"fiscal disbursement of {args.lines:,} payees, import to reported "
          f"(PostgreSQL, sandbox operator over HTTP, sandbox budget system over SOAP, {args.workers} Celery workers on Redis)")
    print(f"  import (parse, check, store, verify wallets): {imported - started:6.2f} s "
          f"({args.lines / (imported - started):,.0f} lines/s)")
    print(f"  submit + approve (reserve quota):   {approved - imported:6.2f} s")
    print(f"  voucher sent and acknowledged:      {paying_started - approved:6.2f} s")
    print(f"  pay, settle, post, trace, finish:   {reporting_started - paying_started:6.2f} s "
          f"({args.lines / max(reporting_started - paying_started, 1e-9):,.0f} lines/s)")
    if "paying" in cpu and "reporting" in cpu:
        print(f"    CPU while paying: {transfer_bench.cpu_spent(cpu['paying'], cpu['reporting'])}")
    print(f"  results reported and acknowledged:  {finished - reporting_started:6.2f} s")
    print(f"  project:  {args.lines / total:>9,.0f} lines/s end to end ({total:.2f} s), request {request.state}")
    print(f"  baseline: {args.lines / csv_baseline:>9,.0f} lines/s csv.reader without checks; "
          f"{args.lines / copy_baseline:,.0f} rows/s psycopg COPY")
    print(f"  peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    quota = Quota.objects.get(quota_id="BENCH-0001")
    paid = request.lines.filter(transfer__state=TransferState.SETTLED).count()
    problems = check_ledger().problems
    print(f"  check:    {paid:,} lines settled, quota consumed {quota.consumed_fen / 100:,.2f} yuan "
          f"reserved {quota.reserved_fen}, {len(problems)} ledger problems")
    if request.state != "reported" or problems or paid != args.lines or quota.reserved_fen:
        sys.exit(1)


if __name__ == "__main__":
    main()
