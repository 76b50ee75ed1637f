"""Benchmark: a payroll file from upload to paid, on PostgreSQL, beside baselines from the same run.

    python bench/payroll.py [--lines 100000] [--workers 2]

Upload means: parse and check every line (IDs, amounts, totals), store the lines, verify every wallet and
holder name with the sandbox operator over HTTP (one call per 1,000). Persist is what storing adds to
the upload: the same import, timed first with its line rows thrown away instead of stored, subtracted.
Pay means: register the payees' wallets, create one transfer per line (outbox), submit them in chunks to
the operator, settle, post, trace. The chunks are paid by `--workers` Celery worker processes on Redis
(queues "treasury" and "payroll"), as in production; `--workers 0` runs them eagerly in this process.
Baselines: Python's csv module reading the same file without any check, and psycopg COPY of the same rows:
the stored lines read back and copied, from Python tuples as the import writes them, into a bare table of
the payroll line table's columns (no index, key or check: the floor of storing exactly these rows).
Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/ecny_bench); with workers,
Redis: BENCH_BROKER_URL (default redis://127.0.0.1:6379/8).
"""
import argparse
import contextlib
import csv
import resource
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import transfers as transfer_bench  # noqa: E402  (production settings; DATABASE_URL, RECEIPTS_AUTO_ISSUE=0)

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/8")


def start_workers(count: int):
    """Celery workers paying the treasury queue, with this process's settings (database, operator, broker)."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "treasury,payroll", "--concurrency", str(count),
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def build_file(lines: int, uscc: str) -> tuple[bytes, list[tuple[str, str]]]:
    from stdnum.cn import ric

    from payroll.templates_files import TEMPLATE_COLUMNS

    rows, wallets = [], []
    for i in range(lines):
        base = f"110101{1960 + i % 40}{1 + i // 40 % 12:02d}{1 + i // 480 % 28:02d}{i // 13_440 % 1000:03d}"
        resident_id = base + ric.calc_check_digit(base + "0")
        wallet_id = f"100{i:013d}"
        basic = 500_000 + i % 9_000
        gross = basic + 80_000
        net = gross - 100_000 - 2_500
        amounts = [basic, 50_000, 30_000, 0, 0, gross, 40_000, 60_000, 0, 2_500, 0, net]
        rows.append([f"E{i:07d}", "张三", resident_id, wallet_id] + [f"{a // 100}.{a % 100:02d}" for a in amounts])
        wallets.append((wallet_id, "张三"))
    total = sum(int(r[-1].replace(".", "")) for r in rows)
    header = [["单位统一社会信用代码", uscc], ["工资所属期", "2026-11"], ["总笔数", str(lines)],
              ["实发合计", f"{total // 100}.{total % 100:02d}"], []]
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(header + [TEMPLATE_COLUMNS] + rows)
    return buffer.getvalue().encode("utf-8-sig"), wallets


@contextlib.contextmanager
def rows_thrown_away():
    """Inside: the payroll import's line rows go nowhere (treasury.bulk.row_stream yields a sink)."""
    from treasury import bulk

    @contextlib.contextmanager
    def discard(*, table: str, columns: list[str]):
        yield lambda rows: None

    kept = bulk.row_stream
    bulk.row_stream = discard
    try:
        yield
    finally:
        bulk.row_stream = kept


def copy_same_rows(batch_id: int) -> float:
    """Seconds for psycopg COPY of the batch's stored lines into a bare table of the same columns."""
    import psycopg

    from payroll.services import _LINE_COLUMNS

    as_text = [f"{column}::text" if column in ("components", "deductions", "warnings") else column
               for column in _LINE_COLUMNS]
    with psycopg.connect(transfer_bench.DATABASE_URL) as conn:
        rows = conn.execute(f"SELECT {', '.join(as_text)} FROM payroll_payrollline WHERE batch_id = %s "
                            "ORDER BY line_no", [batch_id]).fetchall()
        conn.execute("DROP TABLE IF EXISTS bench_payroll_copy")
        conn.execute("CREATE TABLE bench_payroll_copy (LIKE payroll_payrollline INCLUDING DEFAULTS INCLUDING IDENTITY)")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY bench_payroll_copy ({', '.join(_LINE_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_payroll_copy")
        conn.commit()
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="Celery workers paying; 0: eagerly in this process")
    parser.add_argument("--give-up-after", type=int, default=600, help="seconds to wait for the workers")
    args = parser.parse_args()
    transfer_bench.ensure_database()
    # The sandbox first: its address is in the settings the workers start with.
    storage = tempfile.mkdtemp(prefix="bench-sandbox-")
    sandbox, url = transfer_bench.start_sandbox(os.path.join(storage, "sandbox.sqlite3"))
    os.environ["ECNY_OPERATOR_URL"] = url
    if args.workers:
        os.environ["CELERY_BROKER_URL"] = BROKER_URL
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from adapters.ecny.client import get_operator_client
    from adapters.ecny.sandbox.admin import SandboxAdminClient
    from demo.world import make_uscc
    from payroll import services
    from tests import factories as f
    from treasury.access import roles
    from treasury.models import Organization, Wallet
    from treasury.services.ledger import check_ledger
    from treasury.services.wallets import register_wallet
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE ANY "
                       "(ARRAY['payroll_%%', 'treasury_%%', 'trace_%%', 'receipts_%%', 'access_%%', 'auth_user%%'])")
        tables = ", ".join(row[0] for row in cursor.fetchall())
        cursor.execute(f"TRUNCATE {tables} CASCADE")
    settings.MEDIA_ROOT = Path(storage) / "media"
    get_operator_client.cache_clear()
    workers = None
    try:
        if args.workers:
            from config.celery import app as celery_app

            with celery_app.connection_for_write() as conn:  # nothing left over from an earlier run
                conn.default_channel.queue_purge("treasury")
            workers = start_workers(args.workers)
        admin = SandboxAdminClient(url, settings.ECNY_OPERATOR_API_KEY)
        operator = f.make_operator(code="100")
        employer = Organization.objects.create(name="bench employer", org_type=Organization.Type.EMPLOYER,
                                               uscc=make_uscc("91370100MA3C00007"))
        payer = register_wallet(wallet_id="1009999999999999", wallet_type=Wallet.Type.CORPORATE, operator=operator,
                                holder_org=employer, holder_name=employer.name)
        clerk = f.make_user(role=roles.EMPLOYER_OPERATOR, organization=employer)
        approver = f.make_user(role=roles.EMPLOYER_APPROVER, organization=employer)
        data, wallets = build_file(args.lines, employer.uscc)
        admin.open_wallet(wallet_id=payer.wallet_id, wallet_type="WT09", holder_name=employer.name,
                          balance_fen=10**15)
        for start in range(0, len(wallets), 10_000):
            admin.open_wallets(wallets=[{"wallet_id": w, "wallet_type": "WT01", "wallet_class": 1, "holder_name": n}
                                        for w, n in wallets[start : start + 10_000]])

        started = time.perf_counter()
        sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        csv_baseline = time.perf_counter() - started

        from payroll.parsing import parse_payroll_file
        from treasury.services.wallets import verify_wallets

        started = time.perf_counter()
        parsed = parse_payroll_file(data=data, filename="bench.csv")
        parse_seconds = time.perf_counter() - started
        assert parsed.is_valid
        started = time.perf_counter()
        verify_wallets(pairs=wallets)
        verify_seconds = time.perf_counter() - started

        # The same import with the line rows thrown away instead of stored: what the upload costs
        # without storing. The batch it leaves (no lines) is cancelled so the file may be uploaded again.
        started = time.perf_counter()
        with rows_thrown_away():
            dry = services.import_payroll_file(employer=employer, user=clerk, filename="bench.csv", data=data,
                                               now=timezone.now())
        dry_seconds = time.perf_counter() - started
        services.cancel_batch(batch_id=dry.pk, user=clerk, reason="benchmark: import without storing",
                              now=timezone.now())

        started = time.perf_counter()
        batch = services.import_payroll_file(employer=employer, user=clerk, filename="bench.csv", data=data,
                                             now=timezone.now())
        uploaded = time.perf_counter()
        assert batch.state == "validated", batch.problems[:5]
        now = timezone.now()
        processes = {"e-CNY sandbox": sandbox.pid, **({"Celery workers": workers.pid} if workers else {})}
        cpu_before = transfer_bench.cpu_snapshot(processes)
        services.submit_batch(batch_id=batch.pk, user=clerk, now=now)
        services.approve_batch(batch_id=batch.pk, user=approver, now=now)
        services.fund_batch(batch_id=batch.pk, user=approver, now=now)
        services.pay_batch(batch_id=batch.pk, user=clerk, now=now)  # chunks queued after commit
        pay_returned = time.perf_counter()
        while True:  # with workers: they pay the chunks while this process waits for the last line
            batch = services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
            if batch.state != "paying" or not args.workers or time.perf_counter() - uploaded > args.give_up_after:
                break
            time.sleep(0.05)
        finished = time.perf_counter()
        cpu_after = transfer_bench.cpu_snapshot(processes)
        from payroll.payslips import payslip_pdf

        sample = list(batch.lines.select_related("batch__employer", "transfer__receipt").order_by("line_no")[:500])
        payslip_started = time.perf_counter()
        for line in sample:
            payslip_pdf(line=line, now=now)
        payslip_seconds = time.perf_counter() - payslip_started
    finally:
        if workers is not None:
            workers.terminate()
            workers.wait()
        sandbox.terminate()
        sandbox.wait()
    copy_baseline = copy_same_rows(batch.pk)
    total = finished - started
    paying = f"{args.workers} Celery workers on Redis" if args.workers else "Celery eager: chunks one after another"
    print(f"payroll file of {args.lines:,} lines, upload to paid (PostgreSQL, sandbox over HTTP, {paying})")
    upload_seconds = uploaded - started
    persist_seconds = max(upload_seconds - dry_seconds, 1e-9)
    print(f"  parse + validate every line:     {parse_seconds:6.2f} s ({args.lines / parse_seconds:,.0f} lines/s)")
    print(f"  verify wallets with the operator: {verify_seconds:6.2f} s ({args.lines / verify_seconds:,.0f} lines/s)")
    print(f"  the import without storing lines: {dry_seconds:6.2f} s (the two above, inside the import)")
    # The import streams lines into one COPY while it parses, so PostgreSQL's storing overlaps the
    # parsing: this difference is what storing adds to the upload, not what it costs PostgreSQL.
    print(f"  persist (upload minus that):     {persist_seconds:6.2f} s ({args.lines / persist_seconds:,.0f} lines/s; "
          f"overlaps parsing)")
    print(f"  upload in all:                   {upload_seconds:6.2f} s ({args.lines / upload_seconds:,.0f} lines/s)")
    print(f"  approve, fund, pay, settle, post, trace: {finished - uploaded:6.2f} s "
          f"({args.lines / (finished - uploaded):,.0f} lines/s; {paying})")
    print(f"    of which the clerk's pay call (transfers made):  {pay_returned - uploaded:6.2f} s")
    print(f"    CPU: {transfer_bench.cpu_spent(cpu_before, cpu_after)}")
    print(f"  project:  {args.lines / total:>9,.0f} lines/s end to end ({total:.2f} s), batch {batch.state}")
    print(f"  baseline: {args.lines / csv_baseline:>9,.0f} lines/s csv.reader without checks; "
          f"{args.lines / copy_baseline:,.0f} rows/s psycopg COPY of the same line rows")
    print(f"  persist / COPY: {copy_baseline / persist_seconds:.2f} of the COPY rate (target at least 1/3)")
    print(f"  payslips: {len(sample) / payslip_seconds:,.0f} PDF payslips/s (one process, {len(sample)} lines)")
    print(f"  peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB "
          f"(the file itself: {len(data) / 2**20:,.1f} MiB)")
    problems = check_ledger().problems
    print(f"  check:    {len(problems)} ledger problems")
    if batch.state != "paid" or problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
