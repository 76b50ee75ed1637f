"""python manage.py run_budget_sandbox --host 127.0.0.1 --port 8702 --storage var/budget-sandbox.sqlite3 [--seed-demo]

Runs the sandbox budget-management system as a SOAP service (waitress) with its own SQLite quota
ledger. The api key comes from settings (BUDGET_SYSTEM_API_KEY), the message size limit from
BUDGET_MESSAGE_MAX_BYTES. The WSDL is served at http://HOST:PORT/?wsdl.
"""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from adapters.budget.sandbox.server import SERVER_THREADS, serve


class Command(BaseCommand):
    help = "Run the sandbox budget-management system (SOAP, its own quota ledger) on a port."
    # The sandbox stands apart from the service it stands in for: it needs neither its URLs nor its database.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8702)
        parser.add_argument("--storage", default=str(Path("var") / "budget-sandbox.sqlite3"),
                            help="SQLite file of the sandbox budget system (created if missing)")
        parser.add_argument("--seed-demo", action="store_true",
                            help="create the demo quotas (fiscal year 2026, division 370100) if missing")
        parser.add_argument("--threads", type=int, default=SERVER_THREADS)

    def handle(self, *args, host, port, storage, seed_demo, threads, **options):
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"sandbox budget system on http://{host}:{port}/ (WSDL at ?wsdl, storage {storage});"
                          f" Ctrl+C stops it")
        try:
            serve(host=host, port=port, storage_path=storage, api_key=settings.BUDGET_SYSTEM_API_KEY,
                  max_bytes=settings.BUDGET_MESSAGE_MAX_BYTES, seed_demo=seed_demo, threads=threads)
        except KeyboardInterrupt:
            pass
