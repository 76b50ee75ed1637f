"""Integration (PostgreSQL row locks): the task making a run's transfers delivered twice at once, and a
pause racing it, never make a line's transfer twice nor pay a line twice; the same file uploaded twice at once
makes one run."""
import pytest
from django.utils import timezone

from payroll import services
from payroll.models import BatchState, PayrollBatch
from tests.concurrency import at_once
from tests.payroll import builders
from tests.payroll.helpers import approved_and_funded, csv_file, staff, upload
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


@pytest.mark.parametrize("same_bytes", [True, False], ids=["same-file", "same-lines"])
def test_the_same_file_uploaded_twice_at_once_makes_one_run(employer, same_bytes):
    """Both uploads pass the duplicate checks before either commits; the later one waits on the one-live-run
    constraint and is told duplicate_file (it was a server error)."""
    rows = staff(employer, 3)
    files = [csv_file(rows), csv_file(rows if same_bytes else rows[::-1])]
    outcomes = at_once(*[
        lambda data=data: services.import_payroll_file(employer=employer.org, user=employer.operator_user,
                                                       filename="工资.csv", data=data, now=timezone.now())
        for data in files])
    made = [o for o in outcomes if isinstance(o, PayrollBatch)]
    refused = [o for o in outcomes if isinstance(o, services.PayrollError)]
    assert len(made) == 1 and made[0].state == BatchState.VALIDATED, outcomes
    assert len(refused) == 1 and refused[0].code == "duplicate_file", outcomes
    assert list(PayrollBatch.objects.values_list("pk", flat=True)) == [made[0].pk]
    assert services.PayrollLine.objects.count() == 3
    assert upload(employer, staff(employer, 1, start=10)).state == BatchState.VALIDATED  # the connection is fine
