"""python manage.py run_sandbox --host 127.0.0.1 --port 8701 [--storage <VAR_DIR>/sandbox.sqlite3]

Runs the sandbox e-CNY operator as an HTTP service (waitress) with its own SQLite storage; by default the ledger
`manage.py demo` leaves there, with the demo's wallets.
Wallet-class limits and the api key come from settings (WALLET_CLASS_LIMITS, ECNY_OPERATOR_API_KEY).
"""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from adapters.ecny.sandbox.server import SERVER_THREADS, serve


class Command(BaseCommand):
    help = "Run the sandbox e-CNY operator service (its own storage and ledger) on a port."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8701)
        parser.add_argument("--storage", default=str(settings.VAR_DIR / "sandbox.sqlite3"),
                            help="SQLite file of the sandbox operator (created if missing)")
        parser.add_argument("--threads", type=int, default=SERVER_THREADS)

    def handle(self, *args, host, port, storage, threads, **options):
        if settings.WALLET_BALANCE_CAP_POLICY != "refuse":
            raise CommandError("the sandbox operator implements only WALLET_BALANCE_CAP_POLICY=refuse")
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"e-CNY sandbox operator on http://{host}:{port} (storage {storage}); Ctrl+C stops it")
        try:
            serve(host=host, port=port, storage_path=storage, api_key=settings.ECNY_OPERATOR_API_KEY,
                  limits=settings.WALLET_CLASS_LIMITS, threads=threads)
        except KeyboardInterrupt:
            pass
