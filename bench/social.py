"""Benchmark: employers' social-insurance declarations for 100,000 insured persons, computed and collected end to
end on PostgreSQL, beside baselines from the same run.

    python bench/social.py [--employers 100] [--persons 1000] [--parallel 4]

Compute means: for each employer, check every line (resident ID, name, base), clamp every base to the region's
floor and ceiling with its note, compute the four insurance types' employer and individual amounts to the fen
(work injury at the employer's industry risk class: the bench employers take classes 1..8 in turn), store the
lines (COPY) and the totals (`services.create_declaration`). Collect means: declare each employer's month
to the sandbox tax system over SOAP (signed 5101 -> 5102 with a voucher), pay it from the employer's wallet under
its three-party agreement through the transfer core (one transfer per declaration; the sandbox operator over HTTP),
finish it paid, send the payment notice (5103), and reconcile the day. The per-employer round trips (declare;
pay, finish and notify) are overlapped by `--parallel` threads in this driver, each with its own database
connection (the TIPS client keeps a transport and the operator client a session per thread; `--parallel 1`
runs them one after another).
Baselines: the same arithmetic in plain Python with Decimal (clamp, eight multiplications rounded half up) and
psycopg COPY of the same line rows into a bare table.
Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/ecny_bench).
"""
import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import transfers as transfer_bench  # noqa: E402  (production settings; DATABASE_URL, RECEIPTS_AUTO_ISSUE=0)

PERIOD = "2026-03"
TAX_ORG_CODE = "13701000000"


def people(employer_no: int, persons: int) -> list[tuple[str, str, int]]:
    """(name, resident ID, base fen): bases from 3,000.00 to 28,000.00, so some fall below the floor (4,680.00)
    and some above the ceiling (23,400.00)."""
    from stdnum.cn import ric

    rows = []
    for j in range(persons):
        i = employer_no * persons + j
        base = f"110101{1960 + i % 40}{1 + i // 40 % 12:02d}{1 + i // 480 % 28:02d}{i // 13_440 % 1000:03d}"
        rows.append(("张三", base + ric.calc_check_digit(base + "0"), 300_000 + (i * 7_919) % 2_500_000))
    return rows


def decimal_baseline(all_rows, rates: list[Decimal], floor: int, ceiling: int) -> float:
    """The same arithmetic in plain Python with Decimal: clamp, then each rate times the base rounded half up."""
    one = Decimal(1)
    started = time.perf_counter()
    for _name, _id, base_fen in all_rows:
        base = Decimal(min(max(base_fen, floor), ceiling))
        amounts = [int((base * rate).quantize(one, rounding=ROUND_HALF_UP)) for rate in rates]
        sum(amounts)
    return time.perf_counter() - started


def copy_lines_baseline(n: int) -> float:
    """psycopg COPY of n declaration-line-shaped rows into a bare table: the floor of what storing them costs."""
    import psycopg

    with psycopg.connect(transfer_bench.DATABASE_URL) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_social_copy")
        conn.execute("CREATE TABLE bench_social_copy (declaration_id bigint, line_no int, resident_id varchar(18),"
                     " name varchar(100), declared_base_fen bigint, base_fen bigint, base_note varchar(120),"
                     " a1 bigint, a2 bigint, a3 bigint, a4 bigint, a5 bigint, a6 bigint, a7 bigint, a8 bigint,"
                     " employer_fen bigint, individual_fen bigint, total_fen bigint)")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY bench_social_copy FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((1 + i // 1000, i % 1000, "110101196001010011", "张三", 500_000, 500_000, "",
                                80_000, 40_000, 35_000, 10_000, 3_500, 1_500, 1_000, 0, 119_500, 51_500, 171_000))
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_social_copy")
        conn.commit()
    return elapsed


def in_threads(step, work: list[tuple], threads: int) -> None:
    """Run step(*item) for every item, spread over `threads` threads (round robin), each closing its database
    connection when done; the first error is raised here."""
    import threading

    from django.db import connection

    errors = []

    def run(items):
        try:
            for item in items:
                step(*item)
        except BaseException as exc:  # reported by the driver below
            errors.append(exc)
        finally:
            connection.close()

    if threads <= 1:
        for item in work:
            step(*item)
        return
    pool = [threading.Thread(target=run, args=(work[i::threads],)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--employers", type=int, default=100)
    parser.add_argument("--persons", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=4,
                        help="threads overlapping the per-employer declare / pay round trips (1: one after another)")
    args = parser.parse_args()
    total_persons = args.employers * args.persons
    transfer_bench.ensure_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from adapters.ecny.client import get_operator_client
    from adapters.ecny.sandbox.admin import SandboxAdminClient
    from adapters.tips import signing
    from adapters.tips.client import get_tips_client
    from adapters.tips.sandbox.server import start_in_thread
    from demo.world import make_uscc
    from social_security import rules, services
    from social_security.models import INSURANCE_TYPES, Declaration, EmployerRiskClass, FundAccount, Region
    from social_security.reconciliation import reconcile_day
    from tax import services as tax_services
    from tests import factories as f
    from tests.tax.helpers import verification
    from treasury.access import roles
    from treasury.keys import public_key_pem
    from treasury.models import Organization, Wallet
    from treasury.services.ledger import check_ledger
    from treasury.services.wallets import register_wallet

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE ANY "
                       "(ARRAY['social_security_declaration%%', 'social_security_fundaccount',"
                       " 'social_security_reconciliation%%', 'social_security_social%%', 'social_flexible_%%', 'tax_%%', 'tips_%%', 'treasury_%%', 'trace_%%',"
                       " 'receipts_%%', 'access_%%', 'auth_user%%'])")
        tables = ", ".join(row[0] for row in cursor.fetchall())
        cursor.execute(f"TRUNCATE {tables} CASCADE")
    storage = Path(tempfile.mkdtemp(prefix="bench-social-"))
    sandbox, url = transfer_bench.start_sandbox(str(storage / "sandbox.sqlite3"))
    settings.ECNY_OPERATOR_URL = url
    settings.MEDIA_ROOT = storage / "media"
    get_operator_client.cache_clear()
    service_key = storage / "service.pub.pem"
    service_key.write_text(public_key_pem())
    settings.TIPS_PEER_PUBLIC_KEY_FILE = storage / "tips.pub.pem"
    tips = start_in_thread(storage_path=str(storage / "tips.sqlite3"), key_file=storage / "tips.pem",
                           public_key_file=settings.TIPS_PEER_PUBLIC_KEY_FILE, service_public_key_file=service_key,
                           service_url="http://127.0.0.1:9/unused", node_code=settings.TIPS_PEER_NODE_CODE,
                           service_node_code=settings.TIPS_NODE_CODE, max_bytes=settings.TIPS_MESSAGE_MAX_BYTES)
    settings.TIPS_SYSTEM_URL = tips.url
    signing.peer_public_key.cache_clear()
    get_tips_client.cache_clear()
    try:
        admin = SandboxAdminClient(url, settings.ECNY_OPERATOR_API_KEY)
        operator = f.make_operator(code="100")
        authority = Organization.objects.create(name="bench tax authority", org_type=Organization.Type.TAX_AUTHORITY,
                                                code=TAX_ORG_CODE, uscc=make_uscc("11370100MB0000001"))
        fund = register_wallet(wallet_id="1008888888888888", wallet_type=Wallet.Type.CORPORATE, operator=operator,
                               holder_org=authority, holder_name="bench fund")
        admin.open_wallet(wallet_id=fund.wallet_id, wallet_type="WT09", holder_name="bench fund")
        region = Region.objects.get(code="370100")
        FundAccount.objects.create(region=region, tax_authority=authority, wallet=fund)
        staff = f.make_user(role=roles.TAX_STAFF, organization=authority)
        employers = []
        for e in range(args.employers):
            org = Organization.objects.create(name=f"bench employer {e}", org_type=Organization.Type.EMPLOYER,
                                              uscc=make_uscc(f"91370100MA3C{e:05d}"))
            wallet = register_wallet(wallet_id=f"1007{e:012d}", wallet_type=Wallet.Type.CORPORATE, operator=operator,
                                     holder_org=org, holder_name=org.name)
            admin.open_wallet(wallet_id=wallet.wallet_id, wallet_type="WT09", holder_name=org.name, balance_fen=10**13)
            EmployerRiskClass.objects.create(employer=org, region=region, risk_class=e % 8 + 1,
                                             effective_from=dt.date(2026, 1, 1))
            agreement = tax_services.sign_agreement(
                user=staff, tax_org_code=TAX_ORG_CODE, taxpayer_id=org.uscc, taxpayer_name=org.name,
                wallet_id=wallet.wallet_id, protocol_no=f"BENCH{e:06d}", signed_date=dt.date(2026, 1, 5),
                now=timezone.now())
            tax_services.handle_agreement_verification(message=verification(agreement), now=timezone.now())
            employers.append((org, f.make_user(role=roles.EMPLOYER_OPERATOR, organization=org),
                              f.make_user(role=roles.EMPLOYER_APPROVER, organization=org)))
        inputs = [people(e, args.persons) for e in range(args.employers)]

        snapshot = rules.rules_for(region=region, on=dt.date(2026, 3, 1))
        rates = [getattr(snapshot.rates[t], name) for t in INSURANCE_TYPES for name in ("employer_rate", "individual_rate")]
        decimal_seconds = decimal_baseline([row for rows in inputs for row in rows], rates, snapshot.floor_fen,
                                           snapshot.ceiling_fen)

        # Compute: check, clamp, compute and store every line (one create_declaration per employer).
        started = time.perf_counter()
        declarations = []
        for (org, clerk, _approver), rows in zip(employers, inputs):
            declarations.append(services.create_declaration(
                user=clerk, region_code="370100", period=PERIOD, now=timezone.now(),
                rows=[services.LineInput(name=n, resident_id=r, base_fen=b) for n, r, b in rows]))
        computed = time.perf_counter()
        # Collect: declare (5101 over SOAP), pay (transfer core, operator over HTTP, Celery eager), finish, notify
        # (5103 over SOAP), each employer's round trips overlapped by --parallel threads.
        work = [(declaration.pk, approver) for declaration, (_org, _clerk, approver) in zip(declarations, employers)]

        def declare(declaration_id, approver):
            services.declare(declaration_id=declaration_id, user=approver, now=timezone.now())

        def pay(declaration_id, approver):
            services.pay_declaration(declaration_id=declaration_id, user=approver, now=timezone.now())
            services.finish_payment(declaration_id=declaration_id, now=timezone.now())

        in_threads(declare, work, args.parallel)
        declared = time.perf_counter()
        in_threads(pay, work, args.parallel)
        services.finish_paying_declarations(now=timezone.now())  # the sweep: anything a thread left paying
        paid = time.perf_counter()
        run = reconcile_day(check_date=timezone.localdate(), now=timezone.now())
        finished = time.perf_counter()
        states = dict(Declaration.objects.values_list("state").annotate(n=django.db.models.Count("pk")))
        collected = sum(Declaration.objects.values_list("total_fen", flat=True))
        fund_balance = admin.balance(wallet_id=fund.wallet_id)
    finally:
        tips.stop()
        sandbox.terminate()
        sandbox.wait()
        shutil.rmtree(storage, ignore_errors=True)
    copy_seconds = copy_lines_baseline(total_persons)
    total = finished - started
    print(f"social-insurance declarations: {args.employers} employers x {args.persons:,} insured = {total_persons:,} "
          f"persons (PostgreSQL, sandbox operator and tax system over HTTP, Celery eager, "
          f"{args.parallel} thread(s) for the round trips)")
    print(f"  compute: check, clamp, compute, store lines: {computed - started:6.2f} s "
          f"({total_persons / (computed - started):,.0f} persons/s)")
    print(f"  declare (5101 -> 5102 over SOAP):          {declared - computed:6.2f} s "
          f"({args.employers / (declared - computed):,.0f} declarations/s)")
    print(f"  pay, settle, finish, notify (5103):        {paid - declared:6.2f} s "
          f"({args.employers / (paid - declared):,.0f} declarations/s)")
    print(f"  reconcile the day:                         {finished - paid:6.2f} s "
          f"(matched {run.matched_count}, discrepancies {run.discrepancy_count})")
    print(f"  project:  {total_persons / total:>9,.0f} persons/s end to end ({total:.2f} s); states {states}")
    print(f"  baseline: {total_persons / decimal_seconds:>9,.0f} persons/s the same arithmetic in plain Python Decimal; "
          f"{total_persons / copy_seconds:,.0f} rows/s psycopg COPY of the line rows")
    print(f"  collected {collected / 100:,.2f} yuan; fund wallet at the operator {fund_balance / 100:,.2f} yuan")
    problems = check_ledger().problems
    print(f"  check:    {len(problems)} ledger problems")
    if problems or states != {"reconciled": args.employers} or fund_balance != collected:
        sys.exit(1)


if __name__ == "__main__":
    main()
