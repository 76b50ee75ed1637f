"""Benchmark: transfers end to end on PostgreSQL, beside a COPY baseline measured in the same run.

    python bench/transfers.py [--n 100000] [--workers 2] [--chunk 1000] [--create-batch 10000]

End to end means: create (outbox rows + trace events, `--create-batch` transfers a transaction), submit
in chunks of `--chunk` to the sandbox operator over HTTP (a separate process), settle, post double
entries, trace every state change, then prove it: every transfer settled, `ledger_check` clean.
Chunks are processed by `--workers` processes, as Celery workers would (one task per chunk), each
batch's chunks as soon as the batch is committed (the outbox's after-commit hand-over).
Receipts are left out (bench/receipts.py measures them).

The baseline is psycopg COPY of the same number of rows (the transfer columns) into a bare table.
Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/ecny_bench).
"""
import argparse
import resource
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import production  # noqa: E402,F401  (DJANGO_DEBUG=0, throwaway secrets)
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ecny_bench")
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ["RECEIPTS_AUTO_ISSUE"] = "0"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.pop("CELERY_BROKER_URL", None)


def ensure_database():
    import psycopg
    from urllib.parse import urlparse

    url = urlparse(DATABASE_URL)
    name = url.path.lstrip("/")
    admin_url = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sandbox(storage: str):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "run_sandbox", "--host", "127.0.0.1", "--port", str(port),
         "--storage", storage],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "DATABASE_URL": "sqlite:///:memory:"},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("sandbox did not start")


def machine_cpu_seconds() -> float:
    """CPU time used by the whole machine so far (all processes, all cores), from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    busy = sum(int(x) for x in fields[:8]) - int(fields[3]) - int(fields[4])  # minus idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its living descendants (a Celery worker's pool children)."""
    total = 0.0
    try:
        total += process_cpu_seconds(pid)
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            total += sum(process_tree_cpu_seconds(int(child)) for child in children.read().split())
    except FileNotFoundError:
        pass
    return total


def cpu_snapshot(children: dict[str, int]) -> dict[str, float]:
    """{name: CPU seconds so far} for this process, for the trees of the named child processes, and
    "machine" for everything on the machine."""
    return {"machine": machine_cpu_seconds(), "this process": own_cpu_seconds(),
            **{name: process_tree_cpu_seconds(pid) for name, pid in children.items()}}


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> str:
    """What each named process tree spent between two snapshots, and the rest of the machine (PostgreSQL)."""
    spent = {name: after[name] - before[name] for name in before}
    rest = spent.pop("machine") - sum(spent.values())
    return ", ".join([f"{name} {seconds:.1f} s" for name, seconds in spent.items()] + [f"the rest (PostgreSQL) {rest:.1f} s"])


def copy_baseline(n: int) -> float:
    """psycopg COPY of n transfer-shaped rows into a bare table: the floor of what storing them costs."""
    import psycopg

    with psycopg.connect(DATABASE_URL) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy_baseline")
        conn.execute(
            "CREATE TABLE bench_copy_baseline (id bigint, idempotency_key varchar(80), payer_id bigint, payee_id bigint,"
            " amount_fen bigint, purpose_code varchar(16), batch_ref varchar(80), state varchar(20), created_at timestamptz)"
        )
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
            "COPY bench_copy_baseline (id, idempotency_key, payer_id, payee_id, amount_fen, purpose_code, batch_ref,"
            " state, created_at) FROM STDIN"
        ) as copy:
            for i in range(n):
                copy.write_row((i, f"bench:{i}", 1, 2 + i % 1000, 100 + i, "SALARY", "bench", "pending", "2026-11-25T10:00:00+00:00"))
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copy_baseline")
        conn.commit()
    return elapsed


def _work(tasks, sandbox_url, queue):
    """A worker: settles the chunks it takes from `tasks` (one Celery task each, in production) until None."""
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from treasury.services.transfers import submit_transfer_chunk

    settings.ECNY_OPERATOR_URL = sandbox_url
    settled = 0
    while (chunk := tasks.get()) is not None:
        settled += submit_transfer_chunk(transfer_ids=chunk, now=timezone.now()).settled
    with connection.cursor() as cursor:  # this worker's PostgreSQL backend runs on the same machine
        cursor.execute("SELECT pg_backend_pid()")
        backend_cpu = process_cpu_seconds(cursor.fetchone()[0])
    queue.put((settled, own_cpu_seconds(), backend_cpu))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--create-batch", type=int, default=10_000,
                        help="transfers created per transaction; workers settle each batch once it commits "
                             "(0: all in one transaction, settled after it)")
    parser.add_argument("--payees", type=int, default=1000)
    args = parser.parse_args()

    ensure_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, connections, transaction
    from django.utils import timezone

    from adapters.ecny.sandbox.admin import SandboxAdminClient
    from demo.world import make_uscc
    from treasury.models import Organization, Transfer, TransferState, Wallet
    from treasury.services.ledger import check_ledger
    from treasury.services.transfers import NewTransfer, create_transfers, submission_chunks
    from treasury.services.wallets import register_wallet
    from treasury.trace.models import TraceEvent

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE treasury_ledgerentry, treasury_transfer, trace_traceevent, trace_tracestream, "
            "treasury_ledgeraccount, treasury_wallet, treasury_person, access_membership, treasury_organization CASCADE"
        )
    storage = tempfile.mkdtemp(prefix="bench-sandbox-")
    sandbox, url = start_sandbox(os.path.join(storage, "sandbox.sqlite3"))
    settings.ECNY_OPERATOR_URL = url
    try:
        admin = SandboxAdminClient(url, settings.ECNY_OPERATOR_API_KEY)
        operator = Organization.objects.create(name="bench operator", org_type=Organization.Type.OPERATOR_BANK,
                                               uscc=make_uscc("91370100MA3C00001"), code="001")
        employer = Organization.objects.create(name="bench employer", org_type=Organization.Type.EMPLOYER,
                                               uscc=make_uscc("91370100MA3C00007"))
        payer = register_wallet(wallet_id="0010000000000001", wallet_type=Wallet.Type.CORPORATE, operator=operator,
                                holder_org=employer, holder_name="bench employer")
        payees = [
            register_wallet(wallet_id=f"0011{i:012d}", wallet_type=Wallet.Type.CORPORATE, operator=operator,
                            holder_org=operator, holder_name=f"payee {i}")
            for i in range(args.payees)
        ]
        admin.open_wallets(wallets=[{"wallet_id": payer.wallet_id, "wallet_type": "WT09", "wallet_class": None,
                                     "holder_name": payer.holder_name, "balance_fen": 10**15}]
                           + [{"wallet_id": w.wallet_id, "wallet_type": "WT09", "wallet_class": None,
                               "holder_name": w.holder_name} for w in payees])

        baseline = copy_baseline(args.n)

        items = [
            NewTransfer(payer_id=payer.pk, payee_id=payees[i % len(payees)].pk, amount_fen=100 + i % 9_900,
                        idempotency_key=f"bench:{i}", purpose_code="SALARY", source_ref=f"bench line {i + 1}")
            for i in range(args.n)
        ]
        connections.close_all()  # the workers are forked: none may share this process's connection
        tasks, reports = multiprocessing.Queue(), multiprocessing.Queue()
        procs = [multiprocessing.Process(target=_work, args=(tasks, url, reports)) for _ in range(args.workers)]
        for p in procs:
            p.start()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend_pid = cursor.fetchone()[0]
        time.sleep(2)  # the workers start Django before the clock starts
        machine_before, sandbox_before = machine_cpu_seconds(), process_cpu_seconds(sandbox.pid)
        own_before, backend_before = own_cpu_seconds(), process_cpu_seconds(backend_pid)
        started = time.perf_counter()
        batch = args.create_batch or args.n
        for first in range(0, args.n, batch):
            with transaction.atomic():
                # No Celery task queued: the workers take the chunks, as Celery workers would after commit.
                ids = create_transfers(organization_id=employer.pk, batch_ref="bench", transfers=items[first:first + batch],
                                       actor="bench", now=timezone.now(), enqueue=False)
            for chunk in submission_chunks(ids, args.chunk):  # as enqueue_submission cuts them for Celery
                tasks.put(chunk)
        created = time.perf_counter()
        create_cpu = own_cpu_seconds() - own_before
        create_backend_cpu = process_cpu_seconds(backend_pid) - backend_before
        for _ in procs:
            tasks.put(None)
        results = [reports.get() for _ in procs]
        for p in procs:
            p.join()
        finished = time.perf_counter()
        settled = sum(n for n, _, _ in results)
        worker_cpu = sum(cpu for _, cpu, _ in results)
        backend_cpu = sum(cpu for _, _, cpu in results)
        sandbox_cpu = process_cpu_seconds(sandbox.pid) - sandbox_before
        machine_cpu = machine_cpu_seconds() - machine_before
    finally:
        sandbox.terminate()
        sandbox.wait()

    total = finished - started
    not_settled = Transfer.objects.exclude(state=TransferState.SETTLED).count()
    problems = check_ledger().problems
    events = TraceEvent.objects.count()
    print(f"transfers end to end (PostgreSQL, sandbox over HTTP, {args.workers} worker processes, chunks of {args.chunk})")
    print(f"  created   {args.n:>8,} in {created - started:6.2f} s   (outbox rows + trace events; CPU: this process "
          f"{create_cpu:.1f} s, its PostgreSQL backend {create_backend_cpu:.1f} s)")
    print(f"  settled   {settled:>8,} in {finished - started:6.2f} s   (submit over HTTP, settle, post, trace; "
          f"workers start on each batch of {args.create_batch or args.n:,} once it is committed)")
    print(f"  project:  {args.n / total:>10,.0f} transfers/s  ({total:.2f} s)")
    print(f"  CPU: {machine_cpu:.1f} s of {os.cpu_count() * total:.1f} s available; creating {create_cpu + create_backend_cpu:.1f} s "
          f"(above); "
          f"workers {worker_cpu:.1f} s, their PostgreSQL backends {backend_cpu:.1f} s, sandbox {sandbox_cpu:.1f} s, "
          f"the rest (other PostgreSQL processes, other work) {machine_cpu - create_cpu - create_backend_cpu - worker_cpu - backend_cpu - sandbox_cpu:.1f} s")
    print(f"  baseline: {args.n / baseline:>10,.0f} rows/s psycopg COPY into a bare table ({baseline:.2f} s)")
    print(f"  ratio:    {baseline / total:.3f} of the COPY baseline")
    print(f"  check:    {not_settled} not settled, {len(problems)} ledger problems, {events:,} trace events")
    if not_settled or problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
