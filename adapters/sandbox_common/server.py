"""Serving a sandbox's WSGI app with waitress (multi-threaded): blocking, on a thread of this
process, or as a child process (benchmarks).

The app must have `ledger.close()`; on a thread it must also stop waiting (faults that withhold a
reply) once the `stopping` event it was built with is set.
"""
from __future__ import annotations

import gc
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable

import requests
from waitress.server import create_server as _waitress_server


def create_server(app, *, host: str, port: int, threads: int, ident: str, **options):
    """A waitress server for `app` (not yet running); port 0 picks a free port (`effective_port`)."""
    return _waitress_server(app, host=host, port=port, threads=threads, ident=ident, expose_tracebacks=False,
                            asyncore_use_poll=True, **options)


def run_until_interrupted(server, *, app) -> None:
    """Run `server` until interrupted (blocking), then close the app's storage."""
    gc.freeze()  # what is loaded by now lives as long as the process: no collection walks it again
    try:
        server.run()
    finally:
        app.ledger.close()


@dataclass
class SandboxHandle:
    url: str  # the base URL, as the sandbox's clients take it
    admin: object  # the sandbox's admin client
    app: object
    _server: object
    _thread: threading.Thread
    _stopping: threading.Event

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def stop(self) -> None:
        """Stop serving and close the storage. Requests sleeping on a fault are woken up first
        (so one withheld before applying then applies nothing)."""
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


def run_in_thread(server, *, app, stopping: threading.Event, host: str, path: str = "",
                    admin_client: Callable[[str], object]) -> SandboxHandle:
    """Run `server` (serving `app`, built with `stopping`) on a daemon thread named after the server.

    The handle's url is http://host:port + `path`; its admin is `admin_client(url)`.
    """
    url = f"http://{host}:{server.effective_port}{path}"
    thread = threading.Thread(target=server.run, name=server.adj.ident, daemon=True)
    thread.start()
    return SandboxHandle(url=url, admin=admin_client(url), app=app, _server=server, _thread=thread,
                         _stopping=stopping)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_process(command: list[str], *, cwd, path: str = "", host: str = "127.0.0.1",
                  timeout_seconds: float = 30) -> tuple[str, Callable[[], None]]:
    """Run a sandbox's serve command (`--port <a free port>` is appended) as a child process and wait
    until its /health answers. Returns the url (http://host:port + `path`) and a `stop()`.

    Raises RuntimeError when the process ends or does not answer within `timeout_seconds`.
    """
    port = free_port(host)
    process = subprocess.Popen([*command, "--port", str(port)], cwd=cwd, stdout=subprocess.DEVNULL)

    def stop() -> None:
        process.terminate()
        process.wait(timeout=10)

    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            if requests.get(f"http://{host}:{port}/health", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"{' '.join(command)} did not come up on port {port}")
        time.sleep(0.1)
    return f"http://{host}:{port}{path}", stop
