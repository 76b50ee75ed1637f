"""The demo's tax system: the sandbox tax system (TIPS side) and, so that it can call this service, the
service itself served over HTTP on a free loopback port for as long as the demo needs it.

The sandbox sends its messages (9114, 3001, 3102, 1104, 3111) to the service's /tips/soap/ as it would in
production, and the service answers and sends its results (2102, 2104, 2111, 5104) to the sandbox.
"""
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, get_internal_wsgi_application


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # the demo prints what happened; no access log between its lines
        pass


@contextmanager
def serving_service():
    """This service's pages and endpoints on http://127.0.0.1:<free port>; yields that base URL."""
    server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
    server.set_app(get_internal_wsgi_application())
    thread = threading.Thread(target=server.serve_forever, name="demo-service", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def tax_system_up():
    """The sandbox tax system, with its own key pair, sending to this service served over HTTP; the
    service's TIPS settings point at it until the block ends. Yields the sandbox's handle (`.admin`)."""
    from adapters.tips import signing
    from adapters.tips.client import get_tips_client
    from adapters.tips.sandbox.server import start_in_thread
    from treasury.keys import public_key_pem

    keys = Path(tempfile.mkdtemp(prefix="demo-tips-"))
    (keys / "service.pub.pem").write_text(public_key_pem())
    saved = {name: getattr(settings, name) for name in ("TIPS_SYSTEM_URL", "TIPS_PEER_PUBLIC_KEY_FILE")}
    with serving_service() as service_url:
        settings.TIPS_PEER_PUBLIC_KEY_FILE = keys / "tips.pub.pem"
        tips = start_in_thread(storage_path=str(keys / "tips.sqlite3"), key_file=keys / "tips.pem",
                               public_key_file=settings.TIPS_PEER_PUBLIC_KEY_FILE,
                               service_public_key_file=keys / "service.pub.pem",
                               service_url=f"{service_url}/tips/soap/", node_code=settings.TIPS_PEER_NODE_CODE,
                               service_node_code=settings.TIPS_NODE_CODE, max_bytes=settings.TIPS_MESSAGE_MAX_BYTES)
        settings.TIPS_SYSTEM_URL = tips.url
        signing.peer_public_key.cache_clear()
        get_tips_client.cache_clear()
        try:
            yield tips
        finally:
            tips.stop()
            tips.app.close()
            for name, value in saved.items():
                setattr(settings, name, value)
            signing.peer_public_key.cache_clear()
            get_tips_client.cache_clear()
            shutil.rmtree(keys, ignore_errors=True)
