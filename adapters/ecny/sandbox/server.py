"""Serve the sandbox operator over HTTP with waitress (multi-threaded), blocking or in a thread."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from waitress.server import create_server

from adapters.ecny.sandbox.admin import SandboxAdminClient
from adapters.ecny.sandbox.app import SandboxApp
from adapters.ecny.sandbox.ledger import SandboxLedger

logger = logging.getLogger(__name__)

SERVER_THREADS = 8


def build_app(*, storage_path: str, api_key: str, limits: dict, stopping: threading.Event | None = None) -> SandboxApp:
    if not api_key:
        raise ValueError("the sandbox needs an api key")
    ledger = SandboxLedger(storage_path=storage_path, limits=limits)
    return SandboxApp(ledger=ledger, api_key=api_key, stopping=stopping)


def _create_server(app: SandboxApp, *, host: str, port: int, threads: int):
    return create_server(app, host=host, port=port, threads=threads, ident="ecny-sandbox",
                         expose_tracebacks=False, asyncore_use_poll=True)


def serve(*, host: str, port: int, storage_path: str, api_key: str, limits: dict, threads: int = SERVER_THREADS) -> None:
    """Run the sandbox operator until interrupted (blocking)."""
    app = build_app(storage_path=storage_path, api_key=api_key, limits=limits)
    server = _create_server(app, host=host, port=port, threads=threads)
    logger.info("e-CNY sandbox operator listening on http://%s:%s (storage %s)", host, server.effective_port,
                storage_path)
    try:
        server.run()
    finally:
        app.ledger.close()


@dataclass
class SandboxHandle:
    url: str
    admin: SandboxAdminClient
    app: SandboxApp
    _server: object
    _thread: threading.Thread
    _stopping: threading.Event

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def stop(self) -> None:
        """Stop serving and close the storage. Requests sleeping on a fault are woken up first."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        server = self._server

        def close_all():  # runs inside the server's loop thread, so no race with it
            for dispatcher in list(server._map.values()):
                dispatcher.close()

        # Let the worker threads finish what they are answering (sleepers were just woken) while the
        # loop still runs, then close every socket from inside the loop.
        server.task_dispatcher.shutdown(timeout=10)
        try:
            server.trigger.pull_trigger(close_all)
        except OSError:  # the loop already ran the thunk on an earlier pull and closed the trigger
            pass
        self._thread.join(timeout=10)
        self.admin.close()
        self.app.ledger.close()


def start_in_thread(*, storage_path: str, api_key: str, limits: dict, host: str = "127.0.0.1", port: int = 0,
                    threads: int = SERVER_THREADS) -> SandboxHandle:
    """Start the sandbox operator on a background thread; port 0 picks a free port.

    Returns a handle with `url`, `admin` (a SandboxAdminClient) and `stop()`.
    """
    stopping = threading.Event()
    app = build_app(storage_path=storage_path, api_key=api_key, limits=limits, stopping=stopping)
    server = _create_server(app, host=host, port=port, threads=threads)
    url = f"http://{host}:{server.effective_port}"
    thread = threading.Thread(target=server.run, name="ecny-sandbox", daemon=True)
    thread.start()
    return SandboxHandle(url=url, admin=SandboxAdminClient(url, api_key), app=app, _server=server, _thread=thread,
                         _stopping=stopping)
