"""python manage.py run_tips_sandbox --port 8703 --storage var/tips-sandbox.sqlite3 --service-url http://127.0.0.1:8000/tips/soap/

Runs the sandbox tax system (TIPS side) as a SOAP service (waitress) with its own SQLite store. It creates its
Ed25519 key pair on first run (--key-file) and writes its public key where the service looks for it
(settings.TIPS_PEER_PUBLIC_KEY_FILE); it verifies the service's messages with the service's public key
(treasury.keys; created in development if missing). Node codes come from TIPS_PEER_NODE_CODE (its own) and
TIPS_NODE_CODE (the service's), the size limit from TIPS_MESSAGE_MAX_BYTES. WSDL at http://HOST:PORT/?wsdl.
"""
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from adapters.tips.sandbox.server import DEFAULT_API_KEY, SERVER_THREADS, serve


class Command(BaseCommand):
    help = "Run the sandbox tax system (TIPS side: sends 9114/3001/3102, receives 2102) on a port."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8703)
        parser.add_argument("--storage", default=str(Path("var") / "tips-sandbox.sqlite3"))
        parser.add_argument("--service-url", default="http://127.0.0.1:8000/tips/soap/",
                            help="the service's TIPS endpoint, where it sends 9114, 3001, 3102")
        parser.add_argument("--key-file", default=str(Path(settings.VAR_DIR) / "keys" / "tips-sandbox-ed25519.pem"))
        parser.add_argument("--api-key", default=os.environ.get("TIPS_SANDBOX_API_KEY", DEFAULT_API_KEY),
                            help="key of its admin endpoints")
        parser.add_argument("--encoding", default="GBK", choices=["GBK", "UTF-8"])
        parser.add_argument("--threads", type=int, default=SERVER_THREADS)

    def handle(self, *args, host, port, storage, service_url, key_file, api_key, encoding, threads, **options):
        from treasury.keys import public_key_pem

        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        service_key = Path(tempfile.mkstemp(prefix="tips-service-", suffix=".pub.pem")[1])
        service_key.write_text(public_key_pem())
        self.stdout.write(f"sandbox tax system on http://{host}:{port}/ (WSDL at ?wsdl, storage {storage}), sending to"
                          f" {service_url}; its public key in {settings.TIPS_PEER_PUBLIC_KEY_FILE}; Ctrl+C stops it")
        try:
            serve(host=host, port=port, threads=threads, storage_path=storage, key_file=key_file,
                  public_key_file=settings.TIPS_PEER_PUBLIC_KEY_FILE, service_public_key_file=service_key,
                  service_url=service_url, node_code=settings.TIPS_PEER_NODE_CODE,
                  service_node_code=settings.TIPS_NODE_CODE, api_key=api_key,
                  max_bytes=settings.TIPS_MESSAGE_MAX_BYTES, encoding=encoding)
        except KeyboardInterrupt:
            pass
        finally:
            service_key.unlink(missing_ok=True)
