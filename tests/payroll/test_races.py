"""Integration (PostgreSQL row locks): the task making a run's transfers delivered twice at once, and a
pause racing it, never make a line's transfer twice nor pay a line twice."""
import pytest
from django.utils import timezone

from payroll import services
from payroll.models import BatchState
from tests.concurrency import at_once
from tests.payroll import builders
from tests.payroll.helpers import approved_and_funded, staff
from treasury.models import Transfer
from treasury.services.ledger import check_ledger

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("needs_postgresql")]



@pytest.fixture
def paying(employer, monkeypatch):
    """A run of 7 lines moved to paying, its transfers not made yet (the task not delivered), 2 lines a chunk."""
    rows = staff(employer, 7)
    batch = approved_and_funded(employer, rows)
    monkeypatch.setattr(services, "PAY_CHUNK", 2)
    with monkeypatch.context() as patched:
        patched.setattr(services, "_queue_line_transfers", lambda batch_id, actor: None)
        services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    return batch, rows


def test_the_task_delivered_twice_at_once_makes_each_transfer_once(employer, paying):
    batch, rows = paying
    made = at_once(*[lambda: services.make_line_transfers(batch_id=batch.pk, actor="system", now=timezone.now())] * 2)
    assert all(isinstance(n, int) for n in made) and sum(made) == 7
    assert Transfer.objects.filter(batch_ref=batch.batch_ref).count() == 7
    assert batch.lines.filter(transfer__isnull=True).count() == 0
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    for row in rows:
        assert employer.sandbox.admin.balance(wallet_id=row[3]) == builders.net_fen(row)
    assert check_ledger().problems == []


def test_a_pause_racing_the_task_leaves_nothing_sent_after_it(employer, paying):
    batch, rows = paying
    at_once(lambda: services.make_line_transfers(batch_id=batch.pk, actor="system", now=timezone.now()),
            lambda: services.pause_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now()))
    # Whatever the order, every transfer made before the pause was sent or held, none after it was made.
    made = Transfer.objects.filter(batch_ref=batch.batch_ref)
    assert set(made.values_list("state", flat=True)) <= {"settled", "pending"}
    assert all(t.held for t in made.filter(state="pending"))
    services.resume_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now())
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    assert Transfer.objects.filter(batch_ref=batch.batch_ref).count() == 7
    for row in rows:
        assert employer.sandbox.admin.balance(wallet_id=row[3]) == builders.net_fen(row)
    assert check_ledger().problems == []
