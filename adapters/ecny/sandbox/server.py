"""Serve the sandbox operator over HTTP with waitress (multi-threaded), blocking or in a thread."""
from __future__ import annotations

import logging
import threading

from adapters.ecny.sandbox.admin import SandboxAdminClient
from adapters.ecny.sandbox.app import SandboxApp
from adapters.ecny.sandbox.ledger import SandboxLedger
from adapters.sandbox_common.server import SandboxHandle, create_server, run_in_thread, run_until_interrupted

logger = logging.getLogger(__name__)

SERVER_THREADS = 8


def build_app(*, storage_path: str, api_key: str, limits: dict, stopping: threading.Event | None = None) -> SandboxApp:
    if not api_key:
        raise ValueError("the sandbox needs an api key")
    ledger = SandboxLedger(storage_path=storage_path, limits=limits)
    return SandboxApp(ledger=ledger, api_key=api_key, stopping=stopping)


def _create_server(app: SandboxApp, *, host: str, port: int, threads: int):
    return create_server(app, host=host, port=port, threads=threads, ident="ecny-sandbox")


def serve(*, host: str, port: int, storage_path: str, api_key: str, limits: dict, threads: int = SERVER_THREADS) -> None:
    """Run the sandbox operator until interrupted (blocking)."""
    app = build_app(storage_path=storage_path, api_key=api_key, limits=limits)
    server = _create_server(app, host=host, port=port, threads=threads)
    logger.info("e-CNY sandbox operator listening on http://%s:%s (storage %s)", host, server.effective_port,
                storage_path)
    run_until_interrupted(server, app=app)


def start_in_thread(*, storage_path: str, api_key: str, limits: dict, host: str = "127.0.0.1", port: int = 0,
                    threads: int = SERVER_THREADS) -> SandboxHandle:
    """Start the sandbox operator on a background thread; port 0 picks a free port.

    Returns a handle with `url`, `admin` (a SandboxAdminClient) and `stop()`.
    """
    stopping = threading.Event()
    app = build_app(storage_path=storage_path, api_key=api_key, limits=limits, stopping=stopping)
    server = _create_server(app, host=host, port=port, threads=threads)
    return run_in_thread(server, app=app, stopping=stopping, host=host,
                         admin_client=lambda url: SandboxAdminClient(url, api_key))
