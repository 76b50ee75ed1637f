"""Fixtures shared by every test area. Area fixtures live in tests/<area>/conftest.py."""
import pytest


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """Receipts and uploads written by a test go to its own temporary folder, never into var/."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Most tests make users with a password: PBKDF2's rounds cost 0.3 s a user, a sixth of the suite (the
    social-security world alone makes seven). Production keeps Django's hashers; PBKDF2 stays second here so
    a password stored with it still checks."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher",
                                 "django.contrib.auth.hashers.PBKDF2PasswordHasher"]


@pytest.fixture
def needs_postgresql():
    """Skips a test of row locks, races or real workers on SQLite (`pytest.mark.usefixtures("needs_postgresql")`)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://... (see .ci/run)")


@pytest.fixture
def ledger_tamper(db):
    """Switch off the PostgreSQL triggers that keep transfers, ledger accounts and entries (treasury
    migration 0005) for the rest of the test, as someone with the database owner's rights could, and on
    again afterwards. Nothing to do on SQLite."""
    from django.db import connection

    guards = (("treasury_transfer", "treasury_transfer_kept"),
              ("treasury_ledgeraccount", "treasury_ledgeraccount_kept"),
              ("treasury_ledgerentry", "treasury_ledgerentry_append_only"))

    def switch(on: bool):
        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            if connection.in_atomic_block:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses while checks are pending
            for table, trigger in guards:
                cursor.execute(f"ALTER TABLE {table} {'ENABLE' if on else 'DISABLE'} TRIGGER {trigger}")

    switch(False)
    yield
    switch(True)


@pytest.fixture
def ecny_sandbox(settings, tmp_path):
    """A sandbox e-CNY operator as a real HTTP service on a free loopback port, with fresh storage.

    Points the service's operator client at it for the duration of the test.
    """
    from adapters.ecny.client import get_operator_client
    from adapters.ecny.sandbox.server import start_in_thread

    handle = start_in_thread(storage_path=str(tmp_path / "sandbox.sqlite3"), api_key=settings.ECNY_OPERATOR_API_KEY,
                             limits=settings.WALLET_CLASS_LIMITS)
    settings.ECNY_OPERATOR_URL = handle.url
    get_operator_client.cache_clear()
    try:
        yield handle
    finally:
        handle.stop()
        get_operator_client.cache_clear()


@pytest.fixture
def budget_sandbox(settings, tmp_path):
    """A sandbox budget-management system (SOAP) as a real HTTP service on a free loopback port, with
    fresh storage and no quotas (`budget_sandbox.admin.create_quota(...)` or `.seed_demo()`).

    Points the service's budget client at it (BUDGET_SYSTEM_URL) for the duration of the test.
    """
    from adapters.budget.client import get_budget_client
    from adapters.budget.sandbox.server import start_in_thread

    handle = start_in_thread(storage_path=str(tmp_path / "budget-sandbox.sqlite3"),
                             api_key=settings.BUDGET_SYSTEM_API_KEY, max_bytes=settings.BUDGET_MESSAGE_MAX_BYTES)
    settings.BUDGET_SYSTEM_URL = handle.url
    get_budget_client.cache_clear()
    try:
        yield handle
    finally:
        handle.stop()
        get_budget_client.cache_clear()


@pytest.fixture
def tips_sandbox(settings, tmp_path, live_server):
    """A sandbox tax system (TIPS side) as a real HTTP service on a free loopback port, with fresh storage and its
    own key pair, sending to the live test server's /tips/soap/ and receiving the service's 2102 results.

    Points the service at it for the duration of the test: TIPS_SYSTEM_URL, TIPS_PEER_PUBLIC_KEY_FILE (the
    sandbox's public key), node codes; clears the TIPS client and key caches. `tips_sandbox.admin` is a
    TipsSandboxAdminClient. Uses pytest-django's `live_server`, so the test runs with a transactional database.
    """
    from adapters.tips.sandbox.local import tips_sandbox_for

    settings.TIPS_NODE_CODE = "100000000001"
    settings.TIPS_PEER_NODE_CODE = "100000000002"
    with tips_sandbox_for(service_url=f"{live_server.url}/tips/soap/", directory=tmp_path) as handle:
        yield handle


@pytest.fixture
def worker_dies_after_operator_applies(monkeypatch):
    """Until undone, the operator applies each batch call, then the worker dies before recording the answer
    (a KeyboardInterrupt stands for SIGKILL: nothing after the call runs). Call the returned `undo()` to stop."""
    from treasury.services import transfers as transfer_services

    real_client = transfer_services._operator()

    class DiesAfterCall:
        def transfer_batch(self, instructions):
            real_client.transfer_batch(instructions)
            raise KeyboardInterrupt("worker killed")

    monkeypatch.setattr(transfer_services, "_operator", lambda: DiesAfterCall())
    return monkeypatch.undo
