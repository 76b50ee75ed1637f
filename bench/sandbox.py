"""Throughput of the sandbox operator: python bench/sandbox.py [--transfers 100000]

Measures, in the same run:
1. the sandbox ledger alone (no HTTP): `SandboxLedger.transfer_batch` in chunks;
2. the same number of transfers through `HttpOperatorClient.transfer_batch` over HTTP, the
   sandbox running as its own process (`manage.py run_sandbox`), or in this process with
   --in-thread;
and checks that every transfer settled and the payer's balance dropped by exactly the total.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import production  # noqa: F401  (DJANGO_DEBUG=0, throwaway secrets; bench/ is on sys.path)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _setup_django():
    sys.path.insert(0, str(PROJECT_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _wallets(payees: int, amount_total: int) -> tuple[str, list[str], list[dict]]:
    payer = "0010000000000001"
    payee_ids = [f"002{n:013d}" for n in range(1, payees + 1)]
    rows = [{"wallet_id": payer, "wallet_type": "WT09", "wallet_class": None, "holder_name": "某市财政局",
             "balance_fen": amount_total}]
    rows += [{"wallet_id": w, "wallet_type": "WT01", "wallet_class": 1, "holder_name": f"收款人{i}"}
             for i, w in enumerate(payee_ids)]
    return payer, payee_ids, rows


def _instructions(*, payer: str, payee_ids: list[str], count: int, amount_fen: int):
    from adapters.ecny.interface import TransferInstruction

    run = uuid.uuid4().hex[:8]
    return [TransferInstruction(request_id=f"bench-{run}-{n:07d}", payer_wallet=payer,
                                payee_wallet=payee_ids[n % len(payee_ids)], amount_fen=amount_fen,
                                purpose_code="30101", memo="工资") for n in range(count)]


def bench_ledger(*, count: int, chunk: int, payees: int, limits: dict, directory: str) -> float:
    from adapters.ecny.sandbox.ledger import SandboxLedger

    ledger = SandboxLedger(storage_path=os.path.join(directory, "ledger-only.sqlite3"), limits=limits)
    payer, payee_ids, rows = _wallets(payees, count * 100)
    ledger.open_wallets(rows)
    instructions = _instructions(payer=payer, payee_ids=payee_ids, count=count, amount_fen=100)
    started = time.perf_counter()
    for start in range(0, count, chunk):
        results = ledger.transfer_batch(instructions[start:start + chunk])
        assert all(r["status"] == "settled" for r in results), results[0]
    elapsed = time.perf_counter() - started
    assert ledger.wallet(wallet_id=payer)["balance_fen"] == 0
    ledger.close()
    return count / elapsed


def bench_http(*, count: int, chunk: int, payees: int, limits: dict, api_key: str, directory: str,
               in_thread: bool, clients: int) -> float:
    from adapters.ecny.client import HttpOperatorClient
    from adapters.ecny.sandbox.admin import SandboxAdminClient

    storage = os.path.join(directory, "http.sqlite3")
    if in_thread:
        from adapters.ecny.sandbox.server import start_in_thread

        handle = start_in_thread(storage_path=storage, api_key=api_key, limits=limits)
        url, stop = handle.url, handle.stop
    else:
        from adapters.sandbox_common.server import start_process

        url, stop = start_process([sys.executable, str(PROJECT_ROOT / "manage.py"), "run_sandbox", "--storage", storage],
                                  cwd=PROJECT_ROOT)
    try:
        admin = SandboxAdminClient(url, api_key, timeout_seconds=120)
        payer, payee_ids, rows = _wallets(payees, count * 100)
        admin.open_wallets(wallets=rows)
        client = HttpOperatorClient(url, api_key, 120, 3)
        instructions = _instructions(payer=payer, payee_ids=payee_ids, count=count, amount_fen=100)
        chunks = [instructions[start:start + chunk] for start in range(0, count, chunk)]

        def send(batch):
            results = client.transfer_batch(batch)
            assert all(r.status == "settled" for r in results), results[0]

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(send, chunks))
        elapsed = time.perf_counter() - started
        assert admin.balance(wallet_id=payer) == 0, "payer balance must drop by exactly the total"
        client.close()
        admin.close()
        return count / elapsed
    finally:
        stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=1_000)
    parser.add_argument("--payees", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=1, help="threads sending batches at once")
    parser.add_argument("--in-thread", action="store_true", help="run the sandbox inside this process")
    args = parser.parse_args(argv)
    _setup_django()
    from django.conf import settings

    with tempfile.TemporaryDirectory() as directory:
        ledger_rate = bench_ledger(count=args.transfers, chunk=args.chunk, payees=args.payees,
                                   limits=settings.WALLET_CLASS_LIMITS, directory=directory)
        http_rate = bench_http(count=args.transfers, chunk=args.chunk, payees=args.payees,
                               limits=settings.WALLET_CLASS_LIMITS, api_key=settings.ECNY_OPERATOR_API_KEY,
                               directory=directory, in_thread=args.in_thread, clients=args.clients)
    where = "in this process" if args.in_thread else "as its own process"
    print(f"{args.transfers:,} transfers in chunks of {args.chunk:,}, {args.payees:,} payees")
    print(f"  sandbox ledger alone (no HTTP):            {ledger_rate:10,.0f} transfers/s")
    print(f"  HttpOperatorClient -> sandbox {where}: {http_rate:10,.0f} transfers/s "
          f"({args.clients} client thread{'s' if args.clients > 1 else ''})")


if __name__ == "__main__":
    main()
