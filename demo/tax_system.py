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
    """The sandbox tax system, with its own key pair, sending to this service served over HTTP, for the
    duration of the block. Yields the sandbox's handle (`.admin`)."""
    from adapters.tips.sandbox.local import tips_sandbox_for

    directory = Path(tempfile.mkdtemp(prefix="demo-tips-"))
    try:
        with serving_service() as service_url, tips_sandbox_for(service_url=f"{service_url}/tips/soap/",
                                                               directory=directory) as tips:
            yield tips
    finally:
        shutil.rmtree(directory, ignore_errors=True)
