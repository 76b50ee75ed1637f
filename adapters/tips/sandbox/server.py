"""Serve the sandbox tax system with waitress (multi-threaded), blocking or on a thread."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from adapters.sandbox_common.server import SandboxHandle, create_server, run_in_thread, run_until_interrupted
from adapters.tips.sandbox.admin import TipsSandboxAdminClient
from adapters.tips.sandbox.app import TipsSandboxApp
from adapters.tips.sandbox import social
from adapters.tips.sandbox.ledger import TipsLedger
from adapters.tips.signing import ensure_key_pair, load_public_key

logger = logging.getLogger(__name__)

SERVER_THREADS = 8
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_API_KEY = "tips-sandbox-development-key"


def build_app(*, storage_path: str, key_file: str | Path, public_key_file: str | Path | None,
              service_public_key_file: str | Path, service_url: str, node_code: str, service_node_code: str,
              api_key: str = DEFAULT_API_KEY, max_bytes: int = DEFAULT_MAX_BYTES, encoding: str = "GBK",
              stopping: threading.Event | None = None) -> TipsSandboxApp:
    """The app with its own key pair (created at `key_file` if missing; its public key written to
    `public_key_file`, where the service's TIPS_PEER_PUBLIC_KEY_FILE points) and the service's public key."""
    if not api_key:
        raise ValueError("the sandbox needs an api key")
    private_key = ensure_key_pair(key_file, public_key_file)
    app = TipsSandboxApp(ledger=TipsLedger(storage_path=storage_path), private_key=private_key,
                         service_public_key=load_public_key(service_public_key_file), service_url=service_url,
                         node_code=node_code, service_node_code=service_node_code, api_key=api_key,
                         max_bytes=max_bytes, encoding=encoding, stopping=stopping)
    social.attach(app, storage_path=storage_path)  # the social-insurance desk (5101/5103), its own tables
    return app


def _create_server(app, *, host: str, port: int, threads: int, max_bytes: int):
    return create_server(app, host=host, port=port, threads=threads, ident="tips-sandbox",
                         max_request_body_size=max_bytes + 1024 * 1024)


def serve(*, host: str, port: int, threads: int = SERVER_THREADS, **options) -> None:
    """Run the sandbox tax system until interrupted (blocking). `options` as `build_app`."""
    app = build_app(**options)
    server = _create_server(app, host=host, port=port, threads=threads, max_bytes=app.max_bytes)
    logger.info("sandbox tax system listening on http://%s:%s/ (service at %s)", host, server.effective_port,
                app.service_url)
    run_until_interrupted(server, app=app)


def start_in_thread(*, host: str = "127.0.0.1", port: int = 0, threads: int = SERVER_THREADS,
                    **options) -> SandboxHandle:
    """Start the sandbox tax system on a background thread (port 0: a free port); `options` as `build_app`.

    Returns a handle with `url` (ending with "/": the SOAP endpoint; WSDL at url + "?wsdl"), `admin` (a
    TipsSandboxAdminClient) and `stop()`.
    """
    stopping = threading.Event()
    api_key = options.setdefault("api_key", DEFAULT_API_KEY)
    app = build_app(stopping=stopping, **options)
    server = _create_server(app, host=host, port=port, threads=threads, max_bytes=app.max_bytes)
    return run_in_thread(server, app=app, stopping=stopping, host=host, path="/",
                         admin_client=lambda url: TipsSandboxAdminClient(url, api_key))
