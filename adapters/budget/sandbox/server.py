"""Serve the sandbox budget system over HTTP with waitress (multi-threaded), blocking or in a thread."""
from __future__ import annotations

import logging
import threading

from adapters.budget.sandbox.admin import BudgetSandboxAdminClient
from adapters.budget.sandbox.app import BudgetSandboxApp
from adapters.budget.sandbox.ledger import BudgetLedger
from adapters.budget.sandbox.seed import DEMO_QUOTAS
from adapters.sandbox_common.server import SandboxHandle, create_server, run_in_thread, run_until_interrupted

logger = logging.getLogger(__name__)

SERVER_THREADS = 8
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def build_app(*, storage_path: str, api_key: str, max_bytes: int = DEFAULT_MAX_BYTES, seed_demo: bool = False,
              stopping: threading.Event | None = None) -> BudgetSandboxApp:
    if not api_key:
        raise ValueError("the sandbox needs an api key")
    ledger = BudgetLedger(storage_path=storage_path)
    if seed_demo:
        existing = {q.quota_id for q in ledger.quotas(quota_ids=tuple(q["quota_id"] for q in DEMO_QUOTAS))}
        missing = [q for q in DEMO_QUOTAS if q["quota_id"] not in existing]
        if missing:
            ledger.create_quotas(missing)
    return BudgetSandboxApp(ledger=ledger, api_key=api_key, max_bytes=max_bytes, stopping=stopping)


def _create_server(app: BudgetSandboxApp, *, host: str, port: int, threads: int, max_bytes: int):
    # waitress refuses bodies beyond max_request_body_size itself; the app refuses beyond max_bytes with
    # a SOAP fault, so waitress's own limit sits a little higher.
    return create_server(app, host=host, port=port, threads=threads, ident="budget-sandbox",
                         max_request_body_size=max_bytes + 1024 * 1024,
                         # Large bodies: read in bigger pieces and keep them in memory rather than a temp file.
                         recv_bytes=256 * 1024, inbuf_overflow=max_bytes + 1024 * 1024)


def serve(*, host: str, port: int, storage_path: str, api_key: str, max_bytes: int = DEFAULT_MAX_BYTES,
          seed_demo: bool = False, threads: int = SERVER_THREADS) -> None:
    """Run the sandbox budget system until interrupted (blocking)."""
    app = build_app(storage_path=storage_path, api_key=api_key, max_bytes=max_bytes, seed_demo=seed_demo)
    server = _create_server(app, host=host, port=port, threads=threads, max_bytes=max_bytes)
    logger.info("sandbox budget system listening on http://%s:%s/ (storage %s)", host, server.effective_port,
                storage_path)
    run_until_interrupted(server, app=app)


def start_in_thread(*, storage_path: str, api_key: str, max_bytes: int = DEFAULT_MAX_BYTES, seed_demo: bool = False,
                    host: str = "127.0.0.1", port: int = 0, threads: int = SERVER_THREADS) -> SandboxHandle:
    """Start the sandbox budget system on a background thread; port 0 picks a free port.

    Returns a handle with `url` (ending with "/": the SOAP endpoint; the WSDL is at url + "?wsdl"),
    `admin` (a BudgetSandboxAdminClient) and `stop()`.
    """
    stopping = threading.Event()
    app = build_app(storage_path=storage_path, api_key=api_key, max_bytes=max_bytes, seed_demo=seed_demo,
                    stopping=stopping)
    server = _create_server(app, host=host, port=port, threads=threads, max_bytes=max_bytes)
    return run_in_thread(server, app=app, stopping=stopping, host=host, path="/",
                         admin_client=lambda url: BudgetSandboxAdminClient(url, api_key))
