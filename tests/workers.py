"""A real Celery worker on a real broker, for the integration tests that kill one: the fixtures and helpers.

Needs INTEGRATION_BROKER_URL (redis://... or amqp://...) and PostgreSQL (the worker is another process, so it
must share the test database). `.ci/run` sets both. Import the fixtures into the test module that uses them.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from kombu import pools as kombu_pools

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def broker_url():
    url = os.environ.get("INTEGRATION_BROKER_URL")
    if not url:
        pytest.skip("needs a broker: set INTEGRATION_BROKER_URL=redis://127.0.0.1:6379/14 (see .ci/run)")
    return url


@pytest.fixture
def celery_to_broker(broker_url):
    """Send tasks to the real broker from this process (tests otherwise run Celery eagerly)."""
    old_eager, old_url = celery_app.conf.task_always_eager, celery_app.conf.broker_url
    celery_app.conf.update(task_always_eager=False, broker_url=broker_url)
    _reset_connection_pool()
    _empty_broker(broker_url)
    yield
    _reset_connection_pool()
    celery_app.conf.update(task_always_eager=old_eager, broker_url=old_url)


def _empty_broker(url: str) -> None:
    """Nothing left over from an earlier test or run, in any queue. On Redis that includes the tasks a killed
    worker left unacknowledged: Redis gives them back after the visibility timeout to whichever worker runs
    then, which would run a package or a chunk of some earlier test beside this one's (the broker's database is
    the tests' own, INTEGRATION_BROKER_URL). RabbitMQ requeues those when the worker's connection drops, so
    purging the queues is enough there."""
    if url.startswith("redis"):
        import redis

        redis.Redis.from_url(url).flushdb()
        return
    queues = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE}
    with celery_app.connection_for_write() as conn:
        for queue in sorted(queues):
            try:
                conn.default_channel.queue_purge(queue)
            except Exception:  # noqa: BLE001 - a queue no worker declared yet has nothing in it
                conn.close()
                conn.connect()


def _reset_connection_pool():
    # The app keeps one producer pool per broker URL it first saw; drop it so the next send uses the new URL.
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
        celery_app._pool = None
    celery_app.amqp._producer_pool = None
    kombu_pools.reset()


WORKER_APPLICATION_NAME = "ecny-test-worker"


class Worker:
    """`celery worker` in its own process group, consuming `queues` (comma-separated), with 2 pool processes."""

    def __init__(self, *, broker_url, sandbox_url, media_root, queues="treasury", env=None):
        self.queues = queues
        db = connection.settings_dict
        self.env = {
            **os.environ,
            # Named, so that a test can tell the worker's PostgreSQL backends from its own.
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
                            f"?application_name={WORKER_APPLICATION_NAME}",
            "CELERY_BROKER_URL": broker_url,
            "ECNY_OPERATOR_URL": sandbox_url,
            "ECNY_OPERATOR_TIMEOUT_SECONDS": "30",
            "MEDIA_ROOT": str(media_root),
            "SERVICE_SIGNING_KEY_FILE": str(settings.SERVICE_SIGNING_KEY_FILE),
            **(env or {}),  # a test's own settings for the worker (chunk sizes, the tax system's address...)
        }
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", self.queues, "--concurrency", "2",
             "--without-heartbeat", "--without-mingle", "--without-gossip", "--loglevel", "WARNING"],
            cwd=ROOT, env=self.env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        return self

    def kill(self):
        """SIGKILL the whole worker (main process and its pool children): no cleanup, no acks."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker_factory(broker_url, ecny_sandbox, tmp_path):
    workers = []

    def make(queues="treasury", **env):
        worker = Worker(broker_url=broker_url, sandbox_url=ecny_sandbox.url, media_root=tmp_path / "media",
                        queues=queues, env=env).start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()


def wait_for(predicate, *, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")
