"""Benchmark: the tax domain on PostgreSQL, beside baselines measured in the same run.

    python bench/tax.py [--part batch|reconcile|all] [--items 100000] [--workers 2] [--records 1000000]

Batch deduction (`--part batch`): N taxpayers with active three-party agreements, each holding a
personal wallet at the sandbox e-CNY operator (its own process, over HTTP), and a treasury single
account wallet there (set up in bulk, not timed). Timed, end to end: N/1,000 packages of 1,000 items
(3102) received through tax.handlers.TaxHandler().receive_batch, deducted by `--workers` Celery
workers on Redis (queue "tax": one task per package, which pays its transfers at the operator itself and
decides its items; postings, trace), while tax.services.finish_packages runs once a second in the polling
loop as the beat would (every 30 s in service), until every package is done. Then it proves it: every item
settled once, `ledger_check` clean. Before the timed day the same taxpayers are deducted for the day before
(not timed) and the tables analyzed, as a database in service has earlier days and statistics on them.
Besides the rate it prints the CPU the machine used while timed: the workers, the operator, this
process, and the rest (PostgreSQL's backends, however many came and went; on a quiet machine).
Each package's 2102 result goes over SOAP to the sandbox tax system (`manage.py run_tips_sandbox`, its own
process, as the tax system would be), which verifies it and acknowledges it: the timed part ends when every
package is done and its result acknowledged.
Baseline, same run: psycopg COPY of the same number of rows (bench/transfers.py copy_baseline).
Target on a 2-core machine: at least 10,000 items/s.

Reconciliation (`--part reconcile`): the daily three-way reconciliation (对账). Loads N records per
side for one check date: our deductions (with one treasury entry each), the tax system's check
records (3111) and the operator's statement lines of the treasury wallet, generated in the database
(generate_series; not timed), with a few discrepancies planted. Timed: the engine (the set-based
match, opening cases, totals per outcome), in one transaction. Baseline, same run: a bare SQL inner
join of the same three tables on the serial key into a temporary table.
Target: at most 10 s for 1,000,000 records per side.

Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/ecny_bench_tax), and
for the batch part Redis: BENCH_BROKER_URL (default redis://127.0.0.1:6379/13).
"""
import argparse
import datetime as dt
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ecny_bench_tax")
os.environ["BENCH_DATABASE_URL"] = DATABASE_URL
import transfers as transfer_bench  # noqa: E402  (production settings; DATABASE_URL, RECEIPTS_AUTO_ISSUE=0)

os.environ["DATABASE_URL"] = DATABASE_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.pop("CELERY_BROKER_URL", None)
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
OPERATOR_CODE = "300"
TREASURY_CODE = "3701000000"
PACKAGE_ITEMS = 1000

CHECK_DATE = dt.date(2026, 11, 26)
ORG = "13701000000"


def ensure_database():
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    with psycopg.connect(DATABASE_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def load(n: int, run_id: int, package_id: int) -> None:
    """N per side; planted: for every i = 100,000k+1 amount differs at the tax system, +2 missing there,
    +3 missing in the statement, +4 duplicated in the statement."""
    from django.db import connection

    day = CHECK_DATE.isoformat()
    with connection.cursor() as c:
        c.execute("""INSERT INTO tax_taxdeduction (kind, tax_org_code, entrust_date, tra_no, pay_acct, pay_op_bk_code,
            hand_org_name, tax_pay_name, taxpayer_id, protocol_no, amount_fen, tax_vou_no, tax_types, budget_type,
            budget_level_code, remark, treasury_code, state, result_code, add_word, tax_date, created_at, decided_at)
            SELECT 'batch', %s, %s, lpad(i::text, 8, '0'), '3000000000000001', '300100000001', '', '', '', 'P', 1000 + i %% 5000,
                   '', '[]', '1', '3', '', '3701000000', 'succeeded', '90000', '', %s, now(), now()
            FROM generate_series(1, %s) AS i""", [ORG, day, day, n])
        c.execute("""INSERT INTO tax_treasuryentry (deduction_id, entry_date, treasury_code, tax_org_code, project_id,
            tax_type_name, budget_type, budget_level_code, amount_fen, central_fen, local_fen)
            SELECT id, entrust_date, '3701000000', tax_org_code, '101010', '增值税', '1', '3', amount_fen, 0, amount_fen
            FROM tax_taxdeduction WHERE entrust_date = %s""", [day])
        c.execute("""INSERT INTO tax_reconciliation_checkrecord (package_id, check_date, pay_op_bk_code, pay_acct,
            tax_org_code, entrust_date, pack_no, tra_no, amount_fen, tax_vou_no, tax_pay_name, protocol_no)
            SELECT %s, %s, '300100000001', '3000000000000001', %s, %s, '', lpad(i::text, 8, '0'),
                   1000 + i %% 5000 + CASE WHEN i %% 100000 = 1 THEN 1 ELSE 0 END, '', '', 'P'
            FROM generate_series(1, %s) AS i WHERE i %% 100000 <> 2""", [package_id, day, ORG, day, n])
        c.execute("""INSERT INTO tax_reconciliation_statementline (run_id, wallet_id, operator_txn_id, request_id,
            booked_at, direction, kind, amount_fen, tax_org_code, entrust_date, tra_no)
            SELECT %s, '3000000000000002', 'T' || i || '-' || copy, 'tax:' || %s || ':20261126:' || lpad(i::text, 8, '0'),
                   now(), 'credit', 'transfer', 1000 + i %% 5000, %s, %s, lpad(i::text, 8, '0')
            FROM generate_series(1, %s) AS i CROSS JOIN generate_series(1, 2) AS copy
            WHERE i %% 100000 <> 3 AND (copy = 1 OR i %% 100000 = 4)""", [run_id, ORG, ORG, day, n])
        for table in ("tax_taxdeduction", "tax_treasuryentry", "tax_reconciliation_checkrecord",
                      "tax_reconciliation_statementline"):
            c.execute(f"ANALYZE {table}")


def reconcile(records: int):
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from tax.reconciliation import services
    from tax.reconciliation.models import CheckPackage, ReconciliationRun

    call_command("migrate", verbosity=0)
    with connection.cursor() as c:
        c.execute("TRUNCATE tax_reconciliation_reconciliationresult, tax_reconciliation_reconciliationtotal, "
                  "tax_reconciliation_discrepancycase, "
                  "tax_reconciliation_statementline, tax_reconciliation_checkrecord, tax_reconciliation_checkpackage, "
                  "tax_reconciliation_reconciliationrun, tax_treasuryentry, tax_taxdeduction CASCADE")
    n = records
    now = timezone.now()
    run = ReconciliationRun.objects.create(check_date=CHECK_DATE, tax_org_code=ORG)
    package = CheckPackage.objects.create(pay_bk_code="300100000001", check_date=CHECK_DATE, chk_acct_ord="0001",
                                          all_num=n, all_amount_fen=0, child_pack_num=1, cur_pack_no=1, received_at=now)
    started = time.perf_counter()
    with transaction.atomic():
        load(n, run.pk, package.pk)
    print(f"generated {n:,} records per side in {time.perf_counter() - started:.1f} s (not timed)")

    with transaction.atomic(), connection.cursor() as c:
        started = time.perf_counter()
        c.execute("""CREATE TEMP TABLE baseline AS SELECT r.tra_no, r.amount_fen AS tax, d.amount_fen AS ours,
                     l.amount_fen AS operator
                     FROM tax_reconciliation_checkrecord r
                     JOIN tax_taxdeduction d ON d.tax_org_code = r.tax_org_code AND d.entrust_date = r.entrust_date
                          AND d.tra_no = r.tra_no
                     JOIN tax_reconciliation_statementline l ON l.tax_org_code = r.tax_org_code
                          AND l.entrust_date = r.entrust_date AND l.tra_no = r.tra_no""")
        baseline = time.perf_counter() - started
        c.execute("DROP TABLE baseline")

    started = time.perf_counter()
    with transaction.atomic():
        services.match(run_id=run.pk, check_date=CHECK_DATE, tax_org_code=ORG, package_ids=[package.pk])
        services.open_cases(run_id=run.pk, check_date=CHECK_DATE, now=now)
        totals = services.outcome_totals(run_id=run.pk)
    engine = time.perf_counter() - started
    counts = {k: v["count"] for k, v in sorted(totals.items())}
    print(f"outcomes: {counts}")
    planted = max(n // 100_000, 1) if n >= 4 else 0
    expected = {"amount_mismatch": planted, "missing_tax": planted, "missing_operator": planted,
                "duplicate_operator": planted}
    assert all(counts.get(k) == v for k, v in expected.items()), (counts, expected)
    print(f"reconciliation engine, {n:,} records per side: {engine:.2f} s "
          f"({n / engine:,.0f} serials/s); target <= 10 s")
    print(f"baseline, bare SQL three-way join of the same rows: {baseline:.2f} s; ratio {engine / baseline:.1f}x")



def start_workers(count: int, env: dict):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "tax,treasury", "--concurrency",
         str(count), "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def resident_id(i: int) -> str:
    from stdnum.cn import ric

    base = f"110101{1950 + i % 40}{1 + i // 40 % 12:02d}{1 + i // 480 % 28:02d}{i // 13_440 % 1000:03d}"
    return base + ric.calc_check_digit(base + "0")


def setup_taxpayers(n: int, operator_admin, now) -> list[tuple[str, str, str]]:
    """N personal wallets opened at the sandbox (10,000 a call) and registered here in bulk, each with an
    active agreement. Returns (wallet id, name, protocol number) per taxpayer."""
    from django.db import transaction

    from adapters.ecny.interface import WalletCheck
    from tax.models import TaxAgreement, TaxpayerKind
    from treasury.services.wallets import ensure_personal_wallets

    payers = [(f"{OPERATOR_CODE}{i:013d}", "纳税人", resident_id(i)) for i in range(n)]
    for start in range(0, n, 10_000):
        operator_admin.open_wallets(wallets=[
            {"wallet_id": w, "wallet_type": "WT01", "wallet_class": 1, "holder_name": name, "balance_fen": 1_000_000}
            for w, name, _ in payers[start:start + 10_000]])
    checks = {w: WalletCheck(wallet_id=w, exists=True, active=True, holder_name_matches=True, wallet_type="WT01",
                             wallet_class=1) for w, _, _ in payers}
    with transaction.atomic():
        pks = ensure_personal_wallets(holders=payers, known_checks=checks)
        TaxAgreement.objects.bulk_create([
            TaxAgreement(tax_org_code=ORG, taxpayer_kind=TaxpayerKind.PERSON, taxpayer_id=rid, taxpayer_name=name,
                         pay_op_bk_code=OPERATOR_CODE, wallet_id=pks[w], protocol_no=f"P{i:09d}",
                         signed_date=CHECK_DATE, state="active", created_by="bench", created_at=now, verified_at=now,
                         activated_at=now)
            for i, (w, name, rid) in enumerate(payers)], batch_size=5000)
    return [(w, name, f"P{i:09d}") for i, (w, name, _) in enumerate(payers)]


def build_packages(payers, treasury, day: dt.date, first_msg: int = 1) -> list:
    from adapters.tips.interface import BatchDeduction, DeductionItem, MessageHead, TaxTypeItem, TreasuryAccount

    account = TreasuryAccount(payee_bank_no="011370100001", payee_org_code=TREASURY_CODE,
                              payee_acct=treasury.wallet_id, payee_name=treasury.holder_name)
    packages = []
    for p, start in enumerate(range(0, len(payers), PACKAGE_ITEMS)):
        items = []
        for i in range(start, min(start + PACKAGE_ITEMS, len(payers))):
            wallet_id, name, protocol_no = payers[i]
            amount = 100 + i % 5000
            items.append(DeductionItem(
                tra_no=f"{i + 1:08d}", pay_op_bk_code="300100000001", pay_acct=wallet_id, hand_org_name=name,
                amount_fen=amount, tax_vou_no=f"3{i + 1:017d}", tax_pay_name=name, protocol_no=protocol_no,
                tax_types=(TaxTypeItem(project_id="101010", tax_type_name="增值税",
                                       tax_start_date=dt.date(2026, 10, 1), tax_end_date=dt.date(2026, 10, 31),
                                       amount_fen=amount),)))
        head = MessageHead(version="1.0", src="100000000000", des="300100000001", app="TIPS", msg_no="3102",
                           msg_id=f"{first_msg + p:020d}", msg_ref=f"{first_msg + p:020d}", work_date=day)
        packages.append(BatchDeduction(
            head=head, tax_org_code=ORG, entrust_date=day, pack_no=f"{p + 1:08d}", all_num=len(items),
            all_amount_fen=sum(i.amount_fen for i in items), return_term=3, treasury=account, items=tuple(items)))
    return packages


def start_tips_sandbox(storage: str) -> tuple[subprocess.Popen, str, str]:
    """The sandbox tax system on a free port, with its own key pair in `storage`: (process, url, the file of its
    public key, which the service verifies its answers with)."""
    port = transfer_bench.free_port()
    public_key = os.path.join(storage, "tips-sandbox.pub.pem")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "run_tips_sandbox", "--host", "127.0.0.1", "--port", str(port),
         "--storage", os.path.join(storage, "tips.sqlite3"), "--key-file", os.path.join(storage, "tips-sandbox.pem")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "DATABASE_URL": "sqlite:///:memory:", "TIPS_PEER_PUBLIC_KEY_FILE": public_key},
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            if os.path.exists(public_key):
                return proc, f"http://127.0.0.1:{port}/", public_key
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("sandbox tax system did not start")


def batch(items: int, workers_count: int, give_up_after: int, operator_pid: int, tips_pid: int) -> bool:
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count
    from django.utils import timezone

    from config.celery import app as celery_app
    from tax import services
    from tax.handlers import TaxHandler
    from adapters.tips.models import TipsMessage
    from tax.models import DeductionPackage, TaxDeduction
    from tests import factories as f
    from treasury.models import LedgerAccount, Organization, Transfer, TransferState, Wallet
    from treasury.services.ledger import check_ledger
    from treasury.services.wallets import register_wallet
    from adapters.ecny.sandbox.admin import SandboxAdminClient
    from django.conf import settings

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE ANY "
                       "(ARRAY['tax_%%', 'tips_%%', 'fiscal_%%', 'budget_%%', 'payroll_%%', 'treasury_%%', 'trace_%%', "
                       "'receipts_%%', 'access_%%', 'auth_user%%'])")
        tables = ", ".join(row[0] for row in cursor.fetchall())
        cursor.execute(f"TRUNCATE {tables} CASCADE")
    with celery_app.connection_for_write() as conn:  # control.purge() empties only the default queue
        for queue in ("tax", "treasury"):
            conn.default_channel.queue_purge(queue)
    workers = start_workers(workers_count, dict(os.environ))
    try:
        operator_admin = SandboxAdminClient(os.environ["ECNY_OPERATOR_URL"], settings.ECNY_OPERATOR_API_KEY)
        now = timezone.now()
        started = time.perf_counter()
        operator = f.make_operator(code=OPERATOR_CODE)
        f.make_organization(org_type=Organization.Type.TAX_AUTHORITY, name="示范市税务局", code=ORG)
        treasury_org = f.make_organization(org_type=Organization.Type.TREASURY, name="国家金库示范市中心支库",
                                           code=TREASURY_CODE)
        treasury = register_wallet(wallet_id=f"{OPERATOR_CODE}9999999999999", wallet_type=Wallet.Type.CORPORATE,
                                   operator=operator, holder_org=treasury_org, holder_name=treasury_org.name,
                                   account_kind=LedgerAccount.Kind.TREASURY_SINGLE)
        operator_admin.open_wallet(wallet_id=treasury.wallet_id, wallet_type="WT09", holder_name=treasury_org.name)
        payers = setup_taxpayers(items, operator_admin, now)
        handler = TaxHandler()

        def deduct(packages) -> tuple[float, float, float]:
            """Receive the packages, wait until every one is done: (started, received, finished)."""
            started = time.perf_counter()
            for message in packages:
                ack = handler.receive_batch(message)
                assert ack.result == "90000", ack
            received = swept = time.perf_counter()
            while True:  # the workers deduct and finish packages; the beat's sweep runs here too, once a second
                if not DeductionPackage.objects.exclude(state="done", result_acknowledged=True).exists():
                    return started, received, time.perf_counter()
                if time.perf_counter() - swept >= 1:
                    services.finish_packages(now=timezone.now())
                    swept = time.perf_counter()
                if time.perf_counter() - started > give_up_after:
                    states = dict(TaxDeduction.objects.values_list("state").annotate(n=Count("pk")).order_by())
                    raise SystemExit(f"gave up waiting; items by state {states}")
                time.sleep(0.05)

        # The day before, the same taxpayers: a database in service has earlier days' deductions,
        # transfers and trace, and statistics on them (ANALYZE here, autovacuum in service). On tables
        # emptied a moment ago the planner takes a package's 1,000 deductions for one row and walks a whole
        # index to find them.
        day_before = build_packages(payers, treasury, CHECK_DATE - dt.timedelta(days=1))
        deduct(day_before)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        packages = build_packages(payers, treasury, CHECK_DATE, first_msg=len(day_before) + 1)
        print(f"set up {items:,} taxpayers with wallets and active agreements and deducted the day before, "
              f"{len(packages)} packages built in {time.perf_counter() - started:.1f} s (not timed)")

        processes = {"workers": workers.pid, "operator": operator_pid, "tax system": tips_pid}
        cpu_before = transfer_bench.cpu_snapshot(processes)
        started, received, finished = deduct(packages)
        cpu_after = transfer_bench.cpu_snapshot(processes)
    finally:
        workers.terminate()
        workers.wait()
    copy_baseline = transfer_bench.copy_baseline(items)
    total = finished - started
    print(f"tax batch deduction of {items:,} items in {len(packages)} packages of {PACKAGE_ITEMS:,}, received to "
          f"result acknowledged (PostgreSQL, sandbox operator over HTTP, sandbox tax system over SOAP, "
          f"{workers_count} Celery workers on Redis)")
    print(f"  receive (3102 -> 9121, stored):       {received - started:6.2f} s "
          f"({items / (received - started):,.0f} items/s)")
    print(f"  deduct, settle, post, trace, finish, 2102 acknowledged:  {finished - received:6.2f} s")
    print(f"  project:  {items / total:>9,.0f} items/s end to end ({total:.2f} s); target >= 10,000 items/s")
    print(f"  baseline: {items / copy_baseline:>9,.0f} rows/s psycopg COPY of the same number of rows "
          f"({copy_baseline:.2f} s); ratio {total / copy_baseline:.1f}x")
    machine_cpu = cpu_after["machine"] - cpu_before["machine"]
    available = os.cpu_count() * total
    # The cores' share busy says whether less CPU an item, or more parallel work, would make it faster.
    print(f"  CPU used while timed: {machine_cpu:.1f} s of {available:.1f} s available ({machine_cpu / available:.0%} "
          f"busy; {machine_cpu / items * 1000:.2f} s per 1,000 items; {transfer_bench.cpu_spent(cpu_before, cpu_after)})")
    print(f"  peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    succeeded = TaxDeduction.objects.filter(state="succeeded", entrust_date=CHECK_DATE).count()
    # The day's deductions were stored after the day before's: ids from the day's first on.
    first_today = TaxDeduction.objects.filter(entrust_date=CHECK_DATE).order_by("pk").values_list("pk", flat=True)[0]
    settled = Transfer.objects.filter(state=TransferState.SETTLED, batch_ref__startswith="tax-package-",
                                      source_id__gte=first_today)
    settled_count = settled.count()
    settled_once = settled.values("source_id").distinct().count()
    acknowledged = DeductionPackage.objects.filter(result_acknowledged=True, entrust_date=CHECK_DATE).count()
    # Both days' 2102s (the message log is emptied with the tables): a result sent twice by the task and the
    # sweep at once shows here as more sends than packages.
    results_sent = TipsMessage.objects.filter(direction=TipsMessage.Direction.OUTBOUND, msg_no="2102").count()
    problems = check_ledger().problems
    print(f"  check:    {succeeded:,} items succeeded, {settled_count:,} transfers settled "
          f"({settled_once:,} distinct items), {acknowledged} of {len(packages)} results acknowledged "
          f"({results_sent} 2102s sent for {2 * len(packages)} packages of both days), {len(problems)} ledger problems")
    return (succeeded == items and settled_count == items and settled_once == items and not problems
            and acknowledged == len(packages))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["batch", "reconcile", "all"], default="all")
    parser.add_argument("--items", type=int, default=100_000, help="batch deduction items")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--give-up-after", type=int, default=900, help="seconds")
    parser.add_argument("--records", type=int, default=1_000_000, help="reconciliation records per side")
    args = parser.parse_args()
    ensure_database()
    storage = ecny = tips = None
    if args.part in ("batch", "all"):
        storage = tempfile.mkdtemp(prefix="bench-tax-")
        ecny, ecny_url = transfer_bench.start_sandbox(os.path.join(storage, "operator.sqlite3"))
        tips, tips_url, tips_public_key = start_tips_sandbox(storage)
        os.environ.update(ECNY_OPERATOR_URL=ecny_url, CELERY_BROKER_URL=BROKER_URL, TIPS_SYSTEM_URL=tips_url,
                          TIPS_PEER_PUBLIC_KEY_FILE=tips_public_key)
        os.environ.setdefault("LOG_LEVEL", "WARNING")  # a line per message sent would bury the figures
    import django

    django.setup()
    ok = True
    try:
        if ecny is not None:
            ok = batch(args.items, args.workers, args.give_up_after, ecny.pid, tips.pid)
    finally:
        for process in (ecny, tips):
            if process is not None:
                process.terminate()
                process.wait()
    if args.part in ("reconcile", "all"):
        reconcile(args.records)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
