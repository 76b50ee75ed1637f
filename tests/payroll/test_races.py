"""Integration (PostgreSQL row locks): the task making a run's transfers delivered twice at once, and a
pause racing it, never make a line's transfer twice nor pay a line twice; the same file uploaded twice at once
makes one run."""
import pytest
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from payroll import services, union
from payroll.models import BatchState, DuesCall, PayrollBatch
from tests.concurrency import at_once
from tests.payroll import builders
from tests.payroll.helpers import approved_and_funded, csv_file, staff, upload
from tests.payroll.test_services import with_a_failed_line
from tests.payroll.test_union import members_for
from treasury.models import Transfer, TransferState
from treasury.services.transfers import batch_decided
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


def test_two_retries_of_a_failed_line_at_once_pay_it_once(employer):
    rows, batch, line = with_a_failed_line(employer)
    outcomes = at_once(*[lambda user=user: services.retry_lines(batch_id=batch.pk, line_ids=[line.pk], user=user,
                                                                now=timezone.now())
                         for user in (employer.operator_user, employer.approver)])
    refused = [o for o in outcomes if isinstance(o, services.PayrollError)]
    assert sum(isinstance(o, PayrollBatch) for o in outcomes) == 1, outcomes
    assert len(refused) == 1 and refused[0].code == "line_not_retryable", outcomes
    line.refresh_from_db()
    assert line.attempts == 2 and line.transfer.state == TransferState.SETTLED
    assert Transfer.objects.filter(source_id=line.pk, batch_ref=batch.batch_ref).count() == 2  # failed, then paid
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    assert employer.sandbox.admin.balance(wallet_id=rows[0][3]) == builders.net_fen(rows[0])
    assert check_ledger().problems == []


def test_a_retry_and_a_return_of_the_same_line_at_once_do_one_of_them(employer):
    rows, batch, line = with_a_failed_line(employer)
    outcomes = at_once(
        lambda: services.retry_lines(batch_id=batch.pk, line_ids=[line.pk], user=employer.operator_user,
                                     now=timezone.now()),
        lambda: services.return_lines(batch_id=batch.pk, line_ids=[line.pk], user=employer.approver,
                                      reason="改用银行转账", now=timezone.now()),
    )
    refused = [o for o in outcomes if isinstance(o, services.PayrollError)]
    assert sum(isinstance(o, PayrollBatch) for o in outcomes) == 1, outcomes
    assert len(refused) == 1 and refused[0].code in ("line_not_retryable", "unknown_lines"), outcomes
    line.refresh_from_db()
    paid = employer.sandbox.admin.balance(wallet_id=rows[0][3])
    if line.returned:  # the return came first: nothing sent again
        assert line.attempts == 1 and line.transfer.state == TransferState.FAILED and paid == 0
        assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PARTIALLY_PAID
    else:  # the retry came first: paid once, and the return found nothing failed to give up
        assert line.attempts == 2 and line.transfer.state == TransferState.SETTLED
        assert paid == builders.net_fen(rows[0])
        assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    assert check_ledger().problems == []


def test_two_runs_funded_at_once_never_count_the_same_yuan_twice(employer, monkeypatch):
    from types import SimpleNamespace

    runs = []
    for start in (1, 10):
        run = upload(employer, staff(employer, 2, start=start))
        services.submit_batch(batch_id=run.pk, user=employer.operator_user, now=timezone.now())
        runs.append(services.approve_batch(batch_id=run.pk, user=employer.approver, now=timezone.now()))
    balance = sum(run.total_net_fen for run in runs) - 1  # enough for either run, not for both
    monkeypatch.setattr(services, "operator_balance", lambda wallet: SimpleNamespace(balance_fen=balance))
    outcomes = at_once(*[lambda run=run: services.fund_batch(batch_id=run.pk, user=employer.approver,
                                                             now=timezone.now())
                         for run in runs])
    refused = [o for o in outcomes if isinstance(o, services.PayrollError)]
    assert sum(isinstance(o, PayrollBatch) for o in outcomes) == 1, outcomes
    assert len(refused) == 1 and refused[0].code == "insufficient_funds", outcomes
    assert sorted(PayrollBatch.objects.filter(pk__in=[r.pk for r in runs]).values_list("state", flat=True)) == [
        BatchState.APPROVED, BatchState.FUNDED]


def test_approving_and_cancelling_a_run_at_once_leave_it_one_or_the_other(employer):
    batch = upload(employer, staff(employer, 2))
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    outcomes = at_once(
        lambda: services.approve_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now()),
        lambda: services.cancel_batch(batch_id=batch.pk, user=employer.operator_user, reason="发错月份",
                                      now=timezone.now()),
    )
    # A submitted or an approved run cancels; an approval after the cancellation is refused.
    assert isinstance(outcomes[1], PayrollBatch), outcomes
    assert isinstance(outcomes[0], (PayrollBatch, TransitionNotAllowed)), outcomes
    batch.refresh_from_db()
    assert batch.state == BatchState.CANCELLED
    with pytest.raises(TransitionNotAllowed):
        services.fund_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now())
    assert not Transfer.objects.exists()


def test_paying_and_cancelling_a_funded_run_at_once_pay_all_of_it_or_none(employer):
    rows = staff(employer, 3)
    batch = approved_and_funded(employer, rows)
    outcomes = at_once(
        lambda: services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now()),
        lambda: services.cancel_batch(batch_id=batch.pk, user=employer.approver, reason="发错月份", now=timezone.now()),
    )
    assert sum(isinstance(o, PayrollBatch) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, TransitionNotAllowed) for o in outcomes) == 1, outcomes
    batch.refresh_from_db()
    paid = [employer.sandbox.admin.balance(wallet_id=row[3]) for row in rows]
    if batch.state == BatchState.CANCELLED:
        assert not Transfer.objects.exists() and paid == [0] * 3
    else:
        assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
        assert paid == [builders.net_fen(row) for row in rows]
    assert check_ledger().problems == []


def test_the_unions_money_remitted_twice_at_once_goes_once(employer, grassroots):
    """Two announcements that a run's transfers were decided (a chunk's and the sweep's) remit at the same moment."""
    rows = staff(employer, 4)
    members_for(grassroots, rows)
    batch = approved_and_funded(employer, rows)
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    union_transfers = Transfer.objects.filter(batch_ref=f"{batch.batch_ref}-union")
    before = sorted(union_transfers.values_list("idempotency_key", "amount_fen"))
    grassroots_before = employer.sandbox.admin.balance(wallet_id=grassroots.wallet.wallet_id)
    made = at_once(*[lambda: union.remit_for_payroll(batch_id=batch.pk, actor="system", now=timezone.now())] * 2)
    assert made == [[], []]  # all of it went with the run: nothing twice
    assert sorted(union_transfers.values_list("idempotency_key", "amount_fen")) == before
    assert employer.sandbox.admin.balance(wallet_id=grassroots.wallet.wallet_id) == grassroots_before
    assert DuesCall.objects.filter(period=batch.period).count() == 4
    assert check_ledger().problems == []


def test_the_unions_money_of_a_run_first_remitted_by_two_at_once_goes_once(employer, grassroots):
    rows = staff(employer, 4)
    members_for(grassroots, rows)
    batch = approved_and_funded(employer, rows)
    # Not remitted with the run this time: the two remittances at once are the first.
    batch_decided.disconnect(dispatch_uid="payroll.union.remit_when_decided")
    try:
        services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    finally:
        batch_decided.connect(union.remit_when_decided, dispatch_uid="payroll.union.remit_when_decided")
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    union_transfers = Transfer.objects.filter(batch_ref=f"{batch.batch_ref}-union")
    assert not union_transfers.exists()
    made = at_once(*[lambda: union.remit_for_payroll(batch_id=batch.pk, actor="system", now=timezone.now())] * 2)
    assert not [m for m in made if isinstance(m, Exception)], made
    assert sorted(len(m) for m in made) == [0, 6]  # four members' dues and the two parts of the funds, once
    assert union_transfers.count() == 6 and DuesCall.objects.filter(period=batch.period).count() == 4
    dues = 4 * 2_500
    gross = sum(line.gross_fen for line in batch.lines.all())
    split = union.funds_split(gross_fen=gross, funds_rate_bp=grassroots.funds_rate_bp,
                              grassroots_share_bp=grassroots.grassroots_share_bp)
    assert employer.sandbox.admin.balance(wallet_id=grassroots.wallet.wallet_id) == dues + split.grassroots_fen
    assert check_ledger().problems == []


def test_two_dues_calls_of_a_month_at_once_charge_each_member_once(employer, grassroots):
    rows = staff(employer, 3)
    members = members_for(grassroots, rows)
    for row in rows:
        employer.sandbox.admin.fund(wallet_id=row[3], amount_fen=100_00)
    outcomes = at_once(*[lambda: union.issue_dues_call(union_id=grassroots.pk, period="2025-07", actor="union",
                                                       now=timezone.now())] * 2)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert sorted(len(o) for o in outcomes) == [0, 3]
    assert DuesCall.objects.filter(period="2025-07").count() == 3
    for member, row in zip(members, rows):
        assert employer.sandbox.admin.balance(wallet_id=row[3]) == 100_00 - union.dues_fen(
            base_fen=member.dues_base_fen, rate_bp=grassroots.dues_rate_bp)
    assert check_ledger().problems == []


def test_a_pause_racing_a_retry_never_sends_the_retried_line_behind_the_pause(employer, monkeypatch):
    from payroll.tasks import pay_chunk_task

    rows = staff(employer, 3)
    batch = approved_and_funded(employer, rows)
    employer.sandbox.admin.set_status(wallet_id=rows[0][3], status="frozen")
    queued = []  # the rest of the run waits in the broker, so it is still paying
    monkeypatch.setattr(pay_chunk_task, "apply_async", lambda kwargs: queued.append(kwargs))
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    failed = batch.lines.get(wallet_id=rows[0][3])
    services.pay_chunk(batch_id=batch.pk, transfer_ids=[failed.transfer_id], now=timezone.now())
    employer.sandbox.admin.set_status(wallet_id=rows[0][3], status="active")
    outcomes = at_once(
        lambda: services.retry_lines(batch_id=batch.pk, line_ids=[failed.pk], user=employer.operator_user,
                                     now=timezone.now()),
        lambda: services.pause_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now()),
    )
    assert all(isinstance(o, PayrollBatch) for o in outcomes), outcomes
    failed.refresh_from_db()
    assert failed.attempts == 2
    # Retried first: sent (the pause came after it), or held if the transfer core had not claimed it yet;
    # paused first: held. Never sent after the pause without the resume.
    if failed.transfer.state != TransferState.SETTLED:
        assert (failed.transfer.state, failed.transfer.held) == (TransferState.PENDING, True)
    for kwargs in queued:
        pay_chunk_task.apply(kwargs=kwargs)  # held: the run is paused
    assert [employer.sandbox.admin.balance(wallet_id=row[3]) for row in rows[1:]] == [0, 0]
    monkeypatch.undo()
    services.resume_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now())
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    assert [employer.sandbox.admin.balance(wallet_id=row[3]) for row in rows] == [builders.net_fen(r) for r in rows]
    assert Transfer.objects.filter(batch_ref=batch.batch_ref).count() == 4  # one line twice: failed, then paid
    assert check_ledger().problems == []
