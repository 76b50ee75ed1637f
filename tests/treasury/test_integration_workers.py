"""Integration: PostgreSQL row locks, and a real Celery worker on a real broker, killed mid-chunk.

Needs DATABASE_URL pointing at PostgreSQL (the test database is created from it) and, for the
worker tests, INTEGRATION_BROKER_URL (redis://... or amqp://...). `.ci/run` sets both.
"""
import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from treasury.models import LedgerEntry, Transfer, TransferState
from treasury.services import transfers as transfer_services
from treasury.services.ledger import check_ledger
from treasury.services.transfers import NewTransfer, create_transfers
from tests.workers import WORKER_APPLICATION_NAME, wait_for
from tests.workers import broker_url, celery_to_broker, worker_factory  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("needs_postgresql")]



def _items(world, n, batch_ref):
    return [
        NewTransfer(payer_id=world.payer.pk, payee_id=world.payees[i % len(world.payees)].pk, amount_fen=100 + i,
                    idempotency_key=f"{batch_ref}:{i}", source_ref=f"{batch_ref} line {i + 1}")
        for i in range(n)
    ]


def _assert_paid_exactly_once(world, ids, payer_before):
    rows = Transfer.objects.filter(pk__in=ids)
    assert set(rows.values_list("state", flat=True)) == {TransferState.SETTLED}
    total = sum(rows.values_list("amount_fen", flat=True))
    assert payer_before - world.operator_balance(world.payer) == total  # the operator moved it once
    assert LedgerEntry.objects.filter(transfer_id__in=ids).count() == 2 * len(ids)
    assert check_ledger().problems == []


def test_two_workers_racing_on_the_same_chunk_submit_each_transfer_once(world):
    before = world.operator_balance(world.payer)
    with transaction.atomic():
        ids = create_transfers(organization_id=world.employer.pk, batch_ref="race", transfers=_items(world, 2000, "race"),
                               actor="t", now=timezone.now(), hold=True)
    Transfer.objects.filter(pk__in=ids).update(held=False)
    outcomes, errors = [], []
    barrier = threading.Barrier(2)

    def worker():
        try:
            barrier.wait()
            outcomes.append(transfer_services.submit_transfer_chunk(transfer_ids=ids, now=timezone.now()))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(o.claimed for o in outcomes) == 2000
    assert set(Transfer.objects.filter(pk__in=ids).values_list("submit_attempts", flat=True)) == {1}
    _assert_paid_exactly_once(world, ids, before)


def _apply_concurrently(results, count=2):
    """apply_operator_results from `count` threads at once (a worker and recovery racing)."""
    outcomes, errors = [], []
    barrier = threading.Barrier(count)

    def apply():
        try:
            barrier.wait()
            outcomes.append(transfer_services.apply_operator_results(results=results, now=timezone.now()))
        except Exception as exc:  # surfaced by the caller
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=apply) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes, errors


def test_settled_answers_applied_again_or_concurrently_settle_and_post_once(world):
    """The all-settled path (one statement locks, settles and closes) keeps the general path's rules."""
    from adapters.ecny.client import get_operator_client
    from adapters.ecny.interface import TransferInstruction

    before = world.operator_balance(world.payer)
    with transaction.atomic():
        ids = create_transfers(organization_id=world.employer.pk, batch_ref="again", transfers=_items(world, 300, "again"),
                               actor="t", now=timezone.now(), enqueue=False)
    assert transfer_services.submit_transfer_chunk(transfer_ids=ids[:200], now=timezone.now()).settled == 200
    # The other 100: the operator applied them but the reply was lost (unknown), so the recovery
    # and a late reply both bring the same settled answers, at the same time.
    assert len(transfer_services._claim(ids[200:], timezone.now())) == 100
    late = _items(world, 300, "again")[200:]
    wallet_ids = {w.pk: w.wallet_id for w in [world.payer, *world.payees]}
    get_operator_client().transfer_batch([
        TransferInstruction(request_id=t.idempotency_key, payer_wallet=wallet_ids[t.payer_id],
                            payee_wallet=wallet_ids[t.payee_id], amount_fen=t.amount_fen)
        for t in late
    ])
    keys = [t.idempotency_key for t in late]
    transfer_services.mark_outcome_unknown(transfer_ids=ids[200:], reason="lost reply", now=timezone.now())
    results = get_operator_client().query([f"again:{i}" for i in range(300)])
    assert {r.status for r in results} == {"settled"}

    outcomes, errors = _apply_concurrently(results)

    assert errors == []
    assert sum(o["settled"] for o in outcomes) == 100  # the 200 settled before are left alone
    assert not Transfer.objects.filter(pk__in=ids, outbox__isnull=False).exists()
    operator_txn_ids = dict(zip(keys, [r.operator_txn_id for r in results[200:]]))
    assert {t.idempotency_key: t.operator_txn_id for t in Transfer.objects.filter(pk__in=ids[200:])} == operator_txn_ids
    _assert_paid_exactly_once(world, ids, before)
    # Applying them all once more changes nothing.
    assert transfer_services.apply_operator_results(results=results, now=timezone.now())["settled"] == 0
    assert LedgerEntry.objects.filter(transfer_id__in=ids).count() == 600


# --- a real Celery worker -------------------------------------------------------------------


def test_real_worker_settles_chunks_from_the_broker(world, celery_to_broker, worker_factory):
    before = world.operator_balance(world.payer)
    worker_factory()
    with transaction.atomic():  # the outbox: tasks are queued only when this commits
        ids = create_transfers(organization_id=world.employer.pk, batch_ref="worker", transfers=_items(world, 3000, "worker"),
                               actor="t", now=timezone.now())
    wait_for(lambda: not Transfer.objects.filter(pk__in=ids).exclude(state=TransferState.SETTLED).exists(),
              seconds=120, what="3,000 transfers settled by the worker")
    _assert_paid_exactly_once(world, ids, before)


def test_worker_killed_mid_chunk_never_pays_twice_and_loses_nothing(world, celery_to_broker, worker_factory):
    before = world.operator_balance(world.payer)
    # Every operator call now takes 3 s: the worker will be inside the call when it dies.
    world.sandbox.admin.set_fault("latency_ms", value=3000)
    first = worker_factory()
    with transaction.atomic():
        ids = create_transfers(organization_id=world.employer.pk, batch_ref="killed", transfers=_items(world, 3000, "killed"),
                               actor="t", now=timezone.now())
    wait_for(lambda: Transfer.objects.filter(pk__in=ids, state=TransferState.SUBMITTED).exists(),
              seconds=60, what="a chunk claimed by the worker")
    time.sleep(0.5)
    first.kill()
    stranded = Transfer.objects.filter(pk__in=ids).exclude(state=TransferState.SETTLED)
    assert stranded.exists()  # the kill really interrupted the run
    time.sleep(3.5)  # the operator finishes applying the request the dead worker sent
    world.sandbox.admin.set_fault("latency_ms", value=0)

    # A new worker, and the periodic jobs as beat would run them (later: rows are old by then).
    worker_factory()
    later = timezone.now() + timezone.timedelta(minutes=10)
    transfer_services.recover_unconfirmed_transfers(now=later)
    transfer_services.submit_stranded_pending_transfers(now=later)
    wait_for(lambda: not Transfer.objects.filter(pk__in=ids).exclude(state=TransferState.SETTLED).exists(),
              seconds=120, what="every transfer settled after the kill")
    _assert_paid_exactly_once(world, ids, before)


def test_a_worker_process_keeps_its_database_connection_from_task_to_task(world, celery_to_broker, worker_factory,
                                                                           settings):
    """Celery's Django fixup would close the connection before and after every task, so that each task
    started a new PostgreSQL backend; CELERY_DB_REUSE_MAX keeps it. 30 chunk tasks on 2 pool processes."""
    settings.TRANSFER_CHUNK_SIZE = 100
    worker_factory()
    with transaction.atomic():
        ids = create_transfers(organization_id=world.employer.pk, batch_ref="reuse", transfers=_items(world, 3000, "reuse"),
                               actor="t", now=timezone.now())
    backends = set()

    def settled():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [WORKER_APPLICATION_NAME])
            backends.update(row[0] for row in cursor.fetchall())
        return not Transfer.objects.filter(pk__in=ids).exclude(state=TransferState.SETTLED).exists()

    wait_for(settled, seconds=120, what="3,000 transfers settled in 30 tasks")
    settled()
    assert 1 <= len(backends) <= 2, backends  # one per pool process at most, not one per task
