"""Integration: a real Celery worker paying a run is killed inside the operator's calls; no line is paid twice,
none is lost. The run's transfers are made claimed and sent by `payroll.pay_chunk` tasks: chunks in flight
when the worker dies (applied by the operator) and chunks still queued (never sent) are both finished by the
transfer core's periodic jobs."""
import time

import pytest
from django.utils import timezone

from payroll import services
from payroll.models import BatchState, PayrollBatch
from tests.payroll import builders
from tests.payroll.helpers import approved_and_funded, staff
from tests.workers import broker_url, celery_to_broker, worker_factory, wait_for  # noqa: F401 (fixtures)
from treasury.models import LedgerEntry, Transfer, TransferState
from treasury.services import transfers as transfer_services
from treasury.services.ledger import check_ledger

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("needs_postgresql")]



def test_a_worker_killed_while_paying_a_run_pays_every_line_once(employer, celery_to_broker, worker_factory):
    rows = staff(employer, 2500)  # three chunks: 1,000 lines, then 1,000 and 500 made in one transaction
    employer.sandbox.admin.fund(wallet_id=employer.wallet.wallet_id, amount_fen=10_000_000_00)
    batch = approved_and_funded(employer, rows)
    payer_before = employer.sandbox.admin.balance(wallet_id=employer.wallet.wallet_id)
    employer.sandbox.admin.set_fault("latency_ms", value=3000)  # each operator call takes 3 s
    first = worker_factory(queues="payroll,treasury")
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    wait_for(lambda: PayrollBatch.objects.get(pk=batch.pk).transfers_made_at is not None, seconds=60,
             what="the run's transfers made by the worker")
    time.sleep(1)  # both pool processes are inside an operator call; the third chunk waits in the queue
    first.kill()
    transfers = Transfer.objects.filter(batch_ref=batch.batch_ref)
    assert transfers.filter(state=TransferState.SUBMITTED).exists()  # the kill really interrupted the run
    time.sleep(3.5)  # the operator finishes applying the calls the dead worker made
    employer.sandbox.admin.set_fault("latency_ms", value=0)
    # The kill came inside an operator call: the operator moved more money than the service recorded as paid.
    moved = payer_before - employer.sandbox.admin.balance(wallet_id=employer.wallet.wallet_id)
    assert moved > sum(transfers.filter(state=TransferState.SETTLED).values_list("amount_fen", flat=True))

    # A new worker, and the periodic jobs as beat runs them (later: the claimed transfers are old by then).
    worker_factory(queues="payroll,treasury")
    later = timezone.now() + timezone.timedelta(minutes=10)
    transfer_services.recover_unconfirmed_transfers(now=later)  # asks the operator; what it never saw is resent
    wait_for(lambda: not transfers.exclude(state=TransferState.SETTLED).exists(), seconds=120,
             what="every line's transfer settled after the kill")
    services.finish_paying_batches(now=later)
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.PAID

    assert transfers.count() == len(rows)  # one transfer a line
    total = sum(builders.net_fen(row) for row in rows)
    assert payer_before - employer.sandbox.admin.balance(wallet_id=employer.wallet.wallet_id) == total
    for row in rows[:50] + rows[-50:]:
        assert employer.sandbox.admin.balance(wallet_id=row[3]) == builders.net_fen(row)
    assert LedgerEntry.objects.filter(transfer__batch_ref=batch.batch_ref).count() == 2 * len(rows)
    assert check_ledger().problems == []
