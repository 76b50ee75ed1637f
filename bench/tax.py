"""Benchmark: the tax domain's daily three-way reconciliation (对账) on PostgreSQL, beside a baseline.

    python bench/tax.py [--records 1000000]

Loads N records per side for one check date: our deductions (with one treasury entry each), the tax
system's check records (3111) and the operator's statement lines of the treasury wallet, generated in
the database (generate_series; not timed), with a few discrepancies planted. Timed: the engine (the
set-based match, opening cases, totals per outcome), in one transaction. Baseline, same run: a bare SQL
inner join of the same three tables on the serial key into a temporary table.
Target: at most 10 s for 1,000,000 records per side.
Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/ecny_bench_tax).
"""
import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ecny_bench_tax")
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.pop("CELERY_BROKER_URL", None)

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
        c.execute(f"""INSERT INTO tax_taxdeduction (kind, tax_org_code, entrust_date, tra_no, pay_acct, pay_op_bk_code,
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    ensure_database()
    import django

    django.setup()
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
    n = args.records
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


if __name__ == "__main__":
    main()
