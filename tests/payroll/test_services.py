"""Payroll batches through the services: upload, check, approve (maker-checker), fund, pay, finish.
Against the sandbox operator over real HTTP; money through the transfer core."""

import pytest
from django.utils import timezone

from payroll import selectors, services
from payroll.models import BatchState, PayrollBatch
from payroll.services import PayrollError
from tests import factories as f
from tests.payroll import builders
from tests.payroll.helpers import approved_and_funded, csv_file, staff, upload
from treasury.access import roles
from treasury.access.errors import AccessDenied, MakerCheckerViolation
from treasury.models import Transfer, TransferState
from treasury.money import format_yuan
from treasury.services import transfers as transfer_services
from treasury.services.ledger import check_ledger
from treasury.trace.models import TraceEvent

pytestmark = pytest.mark.django_db(transaction=True)
def test_a_clean_file_is_paid_end_to_end(employer):
    rows = staff(employer, 25)
    batch = upload(employer, rows)
    assert batch.state == BatchState.VALIDATED
    assert (batch.payable_count, batch.held_count, batch.problem_count) == (25, 0, 0)
    assert batch.total_net_fen == sum(builders.net_fen(r) for r in rows)
    now = timezone.now()
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    services.approve_batch(batch_id=batch.pk, user=employer.approver, now=now)
    services.fund_batch(batch_id=batch.pk, user=employer.approver, now=now)
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=now)  # Celery eager: pays at once
    batch = services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
    assert batch.state == BatchState.PAID
    transfers = Transfer.objects.filter(batch_ref=batch.batch_ref)
    assert transfers.count() == 25 and set(transfers.values_list("state", flat=True)) == {TransferState.SETTLED}
    line = batch.lines.get(line_no=batch.lines.order_by("line_no").first().line_no)
    assert line.transfer.amount_fen == line.net_fen and line.transfer.source == line
    assert employer.sandbox.admin.balance(wallet_id=rows[0][3]) == builders.net_fen(rows[0])
    assert check_ledger().problems == []
    # Paying again cannot pay twice.
    with pytest.raises(Exception):
        services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    assert Transfer.objects.filter(batch_ref=batch.batch_ref).count() == 25


def test_paying_registers_payees_from_the_imports_wallet_checks(employer, monkeypatch):
    """The import verified every wallet and kept its type and class on the line; paying registers
    the payees' wallets from those without asking the operator a second time."""
    batch = upload(employer, staff(employer, 3))
    line = batch.lines.order_by("line_no").first()
    assert (line.wallet_type, line.wallet_class) == ("WT01", 2)
    now = timezone.now()
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    services.approve_batch(batch_id=batch.pk, user=employer.approver, now=now)
    services.fund_batch(batch_id=batch.pk, user=employer.approver, now=now)

    def not_again(**kwargs):
        raise AssertionError("the wallets were verified at import")

    monkeypatch.setattr("treasury.services.wallets.verify_wallets", not_again)
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    batch = services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
    assert batch.state == BatchState.PAID
    line.refresh_from_db()
    assert (line.transfer.payee.wallet_type, line.transfer.payee.wallet_class) == ("WT01", 2)


def test_operator_refusals_reject_the_file_with_every_line_named(employer):
    rows = staff(employer, 6, skip=(1,))  # line 2's wallet is unknown at the operator
    employer.sandbox.admin.set_status(wallet_id=rows[2][3], status="frozen")
    rows[3][1] = "李四"  # the holder's name does not match
    batch = upload(employer, rows)
    assert batch.state == BatchState.REJECTED
    assert batch.lines.count() == 0  # a rejected file keeps nothing but its upload and report
    codes = sorted((p["code"], p["line"] - batch.problems[0]["line"]) for p in batch.problems)
    assert [c for c, _ in codes] == ["holder_mismatch", "wallet_inactive", "wallet_unknown"]
    report = services.error_report(batch=batch).read().decode("utf-8-sig")
    assert "运营机构查无此钱包" in report and "姓名与钱包户名不一致" in report


def test_a_wallet_of_an_operator_not_registered_here_is_refused_at_import_not_when_paying(employer):
    """The operator may know the wallet, but no operator this service pays through holds its prefix: such a
    file was validated, and paying it failed inside the worker (registering the payee needs its operator)."""
    rows = [builders.employee_row(i) for i in range(1, 3)]
    rows[1][3] = "999" + rows[1][3][3:]
    employer.sandbox.admin.open_wallets(wallets=[
        {"wallet_id": row[3], "wallet_type": "WT01", "wallet_class": 2, "holder_name": row[1]} for row in rows])
    batch = upload(employer, rows)
    assert batch.state == BatchState.REJECTED
    assert [(p["code"], p["line"] - batch.problems[0]["line"]) for p in batch.problems] == [("wallet_unknown", 0)]


def test_hold_invalid_lines_pays_the_rest(employer):
    rows = staff(employer, 5, skip=(4,))
    batch = upload(employer, rows, hold_invalid_lines=True)
    assert batch.state == BatchState.VALIDATED
    assert (batch.payable_count, batch.held_count) == (4, 1)
    assert batch.total_net_fen == sum(builders.net_fen(r) for r in rows[:4])


@pytest.mark.parametrize("header, code", [
    ({"uscc": f.make_uscc()}, "employer_mismatch"),
    ({"period": "2025-13"}, "period_format"),
    ({"line_count": 7}, "line_count_mismatch"),
    ({"total_net": 1}, "total_net_mismatch"),
])
def test_paying_the_valid_lines_does_not_cure_a_problem_of_the_file(employer, header, code):
    """Holding invalid lines is for lines: another employer's file, no valid pay period or control totals that
    do not match the lines reject the file whatever the employer chose, and nothing but the upload is kept."""
    rows = staff(employer, 3)
    batch = services.import_payroll_file(
        employer=employer.org, user=employer.operator_user, filename="工资.csv", now=timezone.now(),
        data=builders.to_csv(builders.payroll_rows(rows, **header)), hold_invalid_lines=True)
    assert batch.state == BatchState.REJECTED and batch.lines.count() == 0
    assert code in {p["code"] for p in batch.problems}


def test_paying_the_valid_lines_of_a_file_without_any_is_refused(employer):
    rows = [list(r) for r in staff(employer, 2)]
    for row in rows:
        row[2] = row[2][:-1] + ("0" if row[2][-1] != "0" else "1")  # a wrong check digit on every line
    batch = upload(employer, rows, hold_invalid_lines=True)
    assert batch.state == BatchState.REJECTED and batch.lines.count() == 0
    assert batch.problems[0]["code"] == "no_payable_line"  # the file's own problem first, then by line
    assert [p["line"] for p in batch.problems] == sorted(p["line"] for p in batch.problems)
    assert services.problem_line_count(batch) == (2, True)


def test_an_upload_is_read_a_chunk_at_a_time_never_whole(employer):
    """The service stores an upload as it reads it and parses the stored copy: a file of a million lines is
    never held in memory whole (the parser's own memory is tested in test_parsing)."""
    import io

    class ChunkedOnly(io.BytesIO):
        largest = 0

        def read(self, size=-1):
            assert size is not None and 0 < size <= 1024 * 1024, "the whole upload was read at once"
            ChunkedOnly.largest = max(ChunkedOnly.largest, size)
            return super().read(size)

    rows = staff(employer, 3)
    batch = services.import_payroll_file(employer=employer.org, user=employer.operator_user, filename="工资.csv",
                                         data=ChunkedOnly(csv_file(rows)), now=timezone.now())
    assert batch.state == BatchState.VALIDATED and batch.payable_count == 3 and ChunkedOnly.largest > 0
    with pytest.raises(PayrollError) as caught:  # the same content again, as bytes this time
        upload(employer, rows)
    assert caught.value.code == "duplicate_file"


def test_same_file_twice_is_refused(employer):
    rows = staff(employer, 3)
    upload(employer, rows)
    with pytest.raises(PayrollError) as caught:
        upload(employer, rows)
    assert caught.value.code == "duplicate_file"


def test_maker_checker_and_scoping(employer):
    batch = upload(employer, staff(employer, 2))
    now = timezone.now()
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    employer.operator_user.groups.add(*employer.approver.groups.all())  # even holding both roles...
    del employer.operator_user._role_names
    with pytest.raises(MakerCheckerViolation):  # ...the preparer cannot approve
        services.approve_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    other = f.make_organization(name="另一家单位")
    outsider = f.make_user(role=roles.EMPLOYER_APPROVER, organization=other)
    with pytest.raises(AccessDenied):
        services.approve_batch(batch_id=batch.pk, user=outsider, now=now)
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.SUBMITTED


def test_insufficient_funds_stops_before_paying(employer):
    batch = upload(employer, staff(employer, 3))
    now = timezone.now()
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    services.approve_batch(batch_id=batch.pk, user=employer.approver, now=now)
    employer.sandbox.admin.reset()
    employer.sandbox.admin.open_wallet(wallet_id=employer.wallet.wallet_id, wallet_type="WT09",
                                       holder_name=employer.org.name, balance_fen=1_00)
    with pytest.raises(PayrollError) as caught:
        services.fund_batch(batch_id=batch.pk, user=employer.approver, now=now)
    assert caught.value.code == "insufficient_funds" and "¥1.00" in str(caught.value)
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.APPROVED


def test_a_funded_run_sets_its_money_aside_from_the_next(employer):
    """Two runs of one corporate wallet cannot both be funded with the same yuan: the second sees what the first
    still has to pay, until the first has paid it."""
    employer.sandbox.admin.reset()
    employer.sandbox.admin.open_wallet(wallet_id=employer.wallet.wallet_id, wallet_type="WT09",
                                       holder_name=employer.org.name, balance_fen=10_000_00)
    first = approved_and_funded(employer, staff(employer, 1))
    second = upload(employer, staff(employer, 1, start=50))
    assert first.total_net_fen + second.total_net_fen > 10_000_00 >= second.total_net_fen
    now = timezone.now()
    services.submit_batch(batch_id=second.pk, user=employer.operator_user, now=now)
    services.approve_batch(batch_id=second.pk, user=employer.approver, now=now)
    with pytest.raises(PayrollError) as caught:
        services.fund_batch(batch_id=second.pk, user=employer.approver, now=now)
    assert caught.value.code == "insufficient_funds" and format_yuan(first.total_net_fen) in str(caught.value)

    services.pay_batch(batch_id=first.pk, user=employer.operator_user, now=now)  # paid in full: nothing set aside
    assert PayrollBatch.objects.get(pk=first.pk).state == BatchState.PAID
    with pytest.raises(PayrollError) as caught:  # and the wallet now holds less than the second run needs
        services.fund_batch(batch_id=second.pk, user=employer.approver, now=now)
    assert caught.value.code == "insufficient_funds" and "¥0.00 已留给" in str(caught.value)
    employer.sandbox.admin.fund(wallet_id=employer.wallet.wallet_id, amount_fen=second.total_net_fen)
    assert services.fund_batch(batch_id=second.pk, user=employer.approver, now=now).state == BatchState.FUNDED


def test_cancel_needs_a_reason_and_happens_before_paying(employer):
    batch = upload(employer, staff(employer, 2))
    with pytest.raises(PayrollError):
        services.cancel_batch(batch_id=batch.pk, user=employer.operator_user, reason=" ", now=timezone.now())
    batch = services.cancel_batch(batch_id=batch.pk, user=employer.operator_user, reason="wrong month",
                                  now=timezone.now())
    assert batch.state == BatchState.CANCELLED and batch.cancel_reason == "wrong month"


def test_failed_and_held_lines_can_be_retried_or_returned(employer):
    rows = staff(employer, 4, skip=(3,))  # line 4's wallet is not open yet: held at upload
    batch = approved_and_funded(employer, rows, hold_invalid_lines=True)
    employer.sandbox.admin.set_status(wallet_id=rows[1][3], status="frozen")  # frozen after the check
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    batch = services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
    assert batch.state == BatchState.PARTIALLY_PAID
    progress = services.line_progress(batch=batch)
    assert (progress.paid, progress.failed, progress.held) == (2, 1, 1)
    failed_line = batch.lines.get(wallet_id=rows[1][3])
    held_line = batch.lines.get(wallet_id=rows[3][3])
    assert failed_line.transfer.failure_code == "WALLET_INACTIVE"

    # A line that was paid cannot be "retried".
    paid_line = batch.lines.get(wallet_id=rows[0][3])
    with pytest.raises(PayrollError) as caught:
        services.retry_lines(batch_id=batch.pk, line_ids=[paid_line.pk], user=employer.operator_user, now=timezone.now())
    assert caught.value.code == "line_not_retryable"

    # The held line's wallet opens; the frozen one is still frozen: retrying it is refused clearly.
    employer.sandbox.admin.open_wallet(wallet_id=rows[3][3], wallet_type="WT01", wallet_class=2, holder_name=rows[3][1])
    with pytest.raises(PayrollError) as caught:
        services.retry_lines(batch_id=batch.pk, line_ids=[failed_line.pk], user=employer.operator_user, now=timezone.now())
    assert caught.value.code == "wallet_inactive"
    # The held line was never in the approved total: paying it needs an approver who did not prepare the batch,
    # even one who holds both roles.
    with pytest.raises(AccessDenied):
        services.retry_lines(batch_id=batch.pk, line_ids=[held_line.pk], user=employer.operator_user,
                             now=timezone.now())
    employer.operator_user.groups.add(*employer.approver.groups.all())
    del employer.operator_user._role_names
    with pytest.raises(MakerCheckerViolation):
        services.retry_lines(batch_id=batch.pk, line_ids=[held_line.pk], user=employer.operator_user,
                             now=timezone.now())
    services.retry_lines(batch_id=batch.pk, line_ids=[held_line.pk], user=employer.approver, now=timezone.now())
    held_line.refresh_from_db()
    assert held_line.transfer.state == TransferState.SETTLED and held_line.attempts == 1
    services.return_lines(batch_id=batch.pk, line_ids=[failed_line.pk], user=employer.operator_user,
                          reason="paid by bank transfer instead", now=timezone.now())
    batch = services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
    assert batch.state == BatchState.PARTIALLY_PAID  # one line was returned, not paid
    assert services.line_progress(batch=batch).paid == 3
    assert check_ledger().problems == []


def test_lines_are_returned_only_while_the_batch_pays(employer):
    """Before paying, the held lines are part of what the approver is about to approve: returning them is
    refused, nothing is marked or traced."""
    rows = staff(employer, 3, skip=(2,))  # line 3's wallet is unknown at the operator: held at upload
    batch = upload(employer, rows, hold_invalid_lines=True)
    assert batch.state == BatchState.VALIDATED and batch.held_count == 1
    held = batch.lines.get(held=True)

    with pytest.raises(PayrollError) as refused:
        services.return_lines(batch_id=batch.pk, line_ids=[held.pk], user=employer.operator_user,
                              reason="改用银行转账", now=timezone.now())
    assert refused.value.code == "not_paying"
    held.refresh_from_db()
    assert not held.returned and held.hold_reason
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.VALIDATED
    assert not TraceEvent.objects.filter(stream_key=batch.batch_ref, kind="payroll.batch.lines_returned").exists()


def with_a_failed_line(employer):
    """A run of two lines whose first failed (its wallet frozen while paying, active again since): (rows, batch,
    the failed line)."""
    rows = staff(employer, 2)
    batch = approved_and_funded(employer, rows)
    employer.sandbox.admin.set_status(wallet_id=rows[0][3], status="frozen")
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
    employer.sandbox.admin.set_status(wallet_id=rows[0][3], status="active")
    return rows, batch, batch.lines.get(wallet_id=rows[0][3])


def test_a_retry_needs_the_money_in_the_corporate_wallet(employer):
    rows, batch, line = with_a_failed_line(employer)
    # The corporate wallet's money went elsewhere meanwhile: 1 yuan is left.
    employer.sandbox.admin.reset()
    employer.sandbox.admin.open_wallet(wallet_id=employer.wallet.wallet_id, wallet_type="WT09",
                                       holder_name=employer.org.name, balance_fen=1_00)
    with pytest.raises(PayrollError) as caught:
        services.retry_lines(batch_id=batch.pk, line_ids=[line.pk], user=employer.operator_user, now=timezone.now())
    assert caught.value.code == "insufficient_funds"
    line.refresh_from_db()
    assert line.attempts == 1 and line.transfer.state == TransferState.FAILED  # nothing was sent


def test_retry_after_failure_uses_a_new_key_and_pays_once(employer):
    from treasury.selectors import dashboard_summary

    rows, batch, line = with_a_failed_line(employer)

    def attention():
        return dashboard_summary(user=employer.operator_user, day=timezone.localdate()).attention_count

    assert attention() == 1  # the failed salary waits for a person
    services.retry_lines(batch_id=batch.pk, line_ids=[line.pk], user=employer.operator_user, now=timezone.now())
    assert attention() == 0  # paid again by a later transfer of the same line: dealt with
    line.refresh_from_db()
    assert line.transfer.idempotency_key == f"payroll:{batch.pk}:{line.line_no}:2"
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    assert employer.sandbox.admin.balance(wallet_id=rows[0][3]) == builders.net_fen(rows[0])


def test_a_salary_whose_money_came_back_is_not_paid_and_is_paid_again_by_a_retry(employer):
    """The operator paid both lines but its reply was lost; by the time recovery asks, one salary came back (the
    operator returned it). That line is failed, not paid: the run is partially paid, and a retry pays it once."""
    rows = staff(employer, 2)
    batch = approved_and_funded(employer, rows)
    employer.sandbox.admin.set_fault("error_after_apply", count=1)
    now = timezone.now()
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=now)
    back = batch.lines.order_by("line_no").first()
    employer.sandbox.admin.return_transfer(request_id=back.transfer.idempotency_key, reason="收款钱包已注销")

    transfer_services.recover_unconfirmed_transfers(now=timezone.now(), older_than_seconds=0)
    batch = services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
    back.refresh_from_db()
    assert back.transfer.state == TransferState.RETURNED
    progress = services.line_progress(batch=batch)
    assert (batch.state, progress.paid, progress.failed, progress.open) == (BatchState.PARTIALLY_PAID, 1, 1, 0)
    assert selectors.line_is_actionable(back)

    services.retry_lines(batch_id=batch.pk, line_ids=[back.pk], user=employer.operator_user, now=timezone.now())
    back.refresh_from_db()
    assert back.transfer.state == TransferState.SETTLED
    assert employer.sandbox.admin.balance(wallet_id=back.wallet_id) == back.net_fen  # paid once, after coming back
    assert check_ledger().problems == []


def test_pause_holds_unsent_transfers_and_resume_pays_them(employer, monkeypatch):
    from payroll.tasks import pay_chunk_task

    rows = staff(employer, 3)
    batch = approved_and_funded(employer, rows)
    queued = []  # the broker: nothing runs until we say so
    monkeypatch.setattr(pay_chunk_task, "apply_async", lambda kwargs: queued.append(kwargs))
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    transfers = Transfer.objects.filter(batch_ref=batch.batch_ref)
    assert set(transfers.values_list("state", flat=True)) == {"submitted"}  # made claimed, not sent yet
    services.pause_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now())
    for kwargs in queued:  # the queued chunk arrives while paused: its transfers are held, not sent
        pay_chunk_task.apply(kwargs=kwargs)
    assert set(transfers.values_list("state", "held")) == {("pending", True)}
    assert employer.sandbox.admin.balance(wallet_id=rows[0][3]) == 0
    monkeypatch.undo()
    services.resume_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now())
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID


def test_transfers_are_made_a_chunk_a_transaction_after_the_pay_call(employer, monkeypatch):
    rows = staff(employer, 5)
    batch = approved_and_funded(employer, rows)
    monkeypatch.setattr(services, "PAY_CHUNK", 2)
    queued = []  # the broker: the task making the lines' transfers runs when we say so
    monkeypatch.setattr(services, "_queue_line_transfers", lambda batch_id, actor: queued.append((batch_id, actor)))
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    assert queued == [(batch.pk, employer.operator_user.username)]
    assert not Transfer.objects.filter(batch_ref=batch.batch_ref).exists()
    progress = services.line_progress(batch=batch)
    assert (progress.open, progress.paid) == (5, 0)  # lines waiting for their transfers are being paid
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAYING
    assert services.make_line_transfers(batch_id=batch.pk, actor="system", now=timezone.now()) == 5
    assert services.make_line_transfers(batch_id=batch.pk, actor="system", now=timezone.now()) == 0  # nothing twice
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    assert Transfer.objects.filter(batch_ref=batch.batch_ref).count() == 5


def test_chunks_are_ranges_of_line_numbers_and_numbers_without_lines_stop_nothing(employer, monkeypatch):
    """A chunk is a range of PAY_CHUNK line numbers (bounded by the batch's index whatever the planner
    believes about the batch); ranges holding no line (blank rows, a header block) are passed over."""
    from payroll.models import PayrollLine

    rows = staff(employer, 5)
    batch = approved_and_funded(employer, rows)
    for line, number in zip(batch.lines.order_by("line_no"), [2, 3, 40, 41, 90]):  # gaps wider than a chunk
        PayrollLine.objects.filter(pk=line.pk).update(line_no=number)
    monkeypatch.setattr(services, "PAY_CHUNK", 2)
    monkeypatch.setattr(services, "_queue_line_transfers", lambda batch_id, actor: None)  # made below
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    chunks = []
    make_chunk = services._create_line_transfers
    monkeypatch.setattr(services, "_create_line_transfers",
                        lambda batch, attempts, **kwargs: chunks.append([line.line_no for line, _ in attempts])
                        or make_chunk(batch, attempts, **kwargs))
    assert services.make_line_transfers(batch_id=batch.pk, actor="system", now=timezone.now()) == 5
    assert chunks == [[2, 3], [40, 41], [90]]
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID


def test_the_answer_deciding_the_last_transfer_moves_the_batch_on_without_a_sweep(employer, monkeypatch):
    """With workers the chunks are paid while and after the transfers are made: the operator's answer that
    decides the batch's last transfer moves it on (the transfer core's batch_decided), no sweep needed."""
    rows = staff(employer, 5)
    batch = approved_and_funded(employer, rows)
    monkeypatch.setattr(services, "PAY_CHUNK", 2)
    chunks = []  # the broker: the chunks are paid when we say so
    monkeypatch.setattr(services, "_queue_pay_chunks", lambda batch_id, transfer_ids: chunks.append(transfer_ids))
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())  # eager: made
    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    for chunk in chunks[:-1]:
        services.pay_chunk(batch_id=batch.pk, transfer_ids=chunk, now=timezone.now())
        assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.PAYING
    services.pay_chunk(batch_id=batch.pk, transfer_ids=chunks[-1], now=timezone.now())
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.PAID


def test_lines_left_without_transfers_are_made_by_the_periodic_task(employer, monkeypatch):
    """The task making the transfers died (or was never delivered): the periodic task makes them."""
    rows = staff(employer, 3)
    batch = approved_and_funded(employer, rows)
    with monkeypatch.context() as patched:
        patched.setattr(services, "_queue_line_transfers", lambda batch_id, actor: None)  # lost
        services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    assert services.finish_paying_batches(now=timezone.now()) == 0  # queues the task; eager: it pays
    # ... and the task that made the last transfers moved the batch on, without waiting for the next sweep.
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.PAID
    for row in rows:
        assert employer.sandbox.admin.balance(wallet_id=row[3]) == builders.net_fen(row)
    assert check_ledger().problems == []


def test_progress_counts_lines_still_waiting_for_their_transfers(employer, monkeypatch, settings):
    """The task making the transfers stopped after its first chunk: the page and the API show the lines
    without a transfer as still to pay, not a finished batch."""
    rows = staff(employer, 5)
    batch = approved_and_funded(employer, rows)
    monkeypatch.setattr(services, "_queue_line_transfers", lambda batch_id, actor: None)
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    monkeypatch.setattr(services, "PAY_CHUNK", 2)
    settings.TRANSFER_CHUNK_SIZE = 2
    make_chunk = services._create_line_transfers
    made = []

    def first_chunk_only(*args, **kwargs):
        if made:
            raise RuntimeError("the task's worker died")
        made.append(make_chunk(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(services, "_create_line_transfers", first_chunk_only)
    with pytest.raises(RuntimeError):
        services.make_line_transfers(batch_id=batch.pk, actor="system", now=timezone.now())

    progress = selectors.progress(batch=PayrollBatch.objects.get(pk=batch.pk))
    assert (progress.count, progress.paid_count, progress.open_count) == (5, 2, 3)
    assert progress.open_fen == sum(builders.net_fen(r) for r in rows[2:])
    assert not progress.done and progress.percent == 40


def test_a_batch_paused_before_its_transfers_are_made_makes_them_on_resume(employer, monkeypatch):
    rows = staff(employer, 3)
    batch = approved_and_funded(employer, rows)
    with monkeypatch.context() as patched:
        patched.setattr(services, "_queue_line_transfers", lambda batch_id, actor: None)  # not delivered yet
        services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    services.pause_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now())
    assert services.make_line_transfers(batch_id=batch.pk, actor="system", now=timezone.now()) == 0  # paused
    assert services.finish_paying_batches(now=timezone.now()) == 0
    assert not Transfer.objects.filter(batch_ref=batch.batch_ref).exists()
    services.resume_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now())
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID


def test_worker_killed_while_paying_never_pays_a_line_twice(employer, worker_dies_after_operator_applies):
    from treasury.services import transfers as transfer_services

    rows = staff(employer, 5)
    batch = approved_and_funded(employer, rows)
    with pytest.raises(KeyboardInterrupt):
        services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    worker_dies_after_operator_applies()  # the worker is back
    batch.refresh_from_db()
    assert batch.state == BatchState.PAYING
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAYING
    transfer_services.recover_unconfirmed_transfers(now=timezone.now() + timezone.timedelta(minutes=5))
    # The recovery decided the last transfers: the batch moved on at once (no sweep needed).
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.PAID
    for row in rows:
        assert employer.sandbox.admin.balance(wallet_id=row[3]) == builders.net_fen(row)
    assert check_ledger().problems == []


def test_payroll_import_command(employer, tmp_path, capsys):
    from django.core.management import CommandError, call_command

    rows = staff(employer, 3)
    good = tmp_path / "good.csv"
    good.write_bytes(builders.to_csv(builders.payroll_rows(rows)))
    call_command("payroll_import", str(good), "--employer", employer.org.uscc, "--period", "2025-06")
    out = capsys.readouterr().out
    assert "validated: 3 lines in the file, 3 valid" in out
    bad_rows = [list(r) for r in staff(employer, 2, start=10)]
    bad_rows[1][2] = bad_rows[1][2][:-1] + ("0" if bad_rows[1][2][-1] != "0" else "1")  # a wrong check digit
    bad = tmp_path / "bad.csv"
    bad.write_bytes(builders.to_csv(builders.payroll_rows(bad_rows)))
    with pytest.raises(CommandError, match="rejected"):
        call_command("payroll_import", str(bad), "--employer", employer.org.uscc, "--period", "2025-06")
    out = capsys.readouterr().out
    assert "rejected: 2 lines in the file, 1 valid, 1 rejected (1 problems)" in out and "line " in out
    # The same rejected file said to be for another month: a clear refusal, not a traceback.
    with pytest.raises(CommandError, match="the file is for 2025-06, not 2025-07"):
        call_command("payroll_import", str(bad), "--employer", employer.org.uscc, "--period", "2025-07")


def test_close_only_when_nothing_is_left_undecided(employer):
    rows = staff(employer, 3, skip=(2,))
    batch = approved_and_funded(employer, rows, hold_invalid_lines=True)
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
    with pytest.raises(PayrollError) as caught:
        services.close_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    assert caught.value.code == "lines_open"
    held = batch.lines.get(held=True)
    services.return_lines(batch_id=batch.pk, line_ids=[held.pk], user=employer.operator_user, reason="left the company",
                          now=timezone.now())
    assert services.close_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now()).state == BatchState.CLOSED


def test_a_file_refused_half_way_leaves_no_line_behind(employer, monkeypatch):
    """Lines are stored (one COPY on PostgreSQL) while the file is read: a file found broken after
    some chunks were written is refused and nothing of it stays."""
    monkeypatch.setattr(services, "LINE_INSERT_CHUNK", 2)
    chunks = []
    real_check = services._check_wallets
    monkeypatch.setattr(services, "_check_wallets", lambda rows, *args: chunks.append(len(rows)) or real_check(rows, *args))
    rows = staff(employer, 5)
    data = csv_file(rows) + b"\n" * 300_000 + b"E9,\xff\n"  # not UTF-8, far down the file
    with pytest.raises(services.parsing.PayrollFileRefused) as refused:
        services.import_payroll_file(employer=employer.org, user=employer.operator_user, filename="工资.csv",
                                     data=data, now=timezone.now())
    assert refused.value.code == "encoding"
    assert chunks == [2, 2]  # two chunks were written before the broken part was read
    assert not PayrollBatch.objects.exists()
    assert not services.PayrollLine.objects.exists()
    assert upload(employer, rows).state == BatchState.VALIDATED  # and the connection is fine afterwards


def test_the_same_lines_in_a_file_of_other_bytes_are_refused_like_the_same_file(employer):
    """The same file was known by its bytes alone: saved again (an XLSX records when), as XLSX instead of CSV, in
    another order or with a blank row, the same lines of the same month made a second run, and each salary could
    be paid twice. Refused like the same file, and nothing of the upload is kept."""
    rows = staff(employer, 3)
    first = upload(employer, rows)
    assert first.state == BatchState.VALIDATED
    again = {
        "工资.xlsx": builders.to_xlsx(builders.payroll_rows(rows)),
        "工资.csv": builders.to_csv([*builders.payroll_rows(rows[::-1]), []], encoding="gbk"),
    }
    for name, data in again.items():
        with pytest.raises(PayrollError) as caught:
            services.import_payroll_file(employer=employer.org, user=employer.operator_user, filename=name, data=data,
                                         now=timezone.now())
        assert caught.value.code == "duplicate_file" and f"批次 {first.pk}" in str(caught.value), name
    assert list(PayrollBatch.objects.values_list("pk", flat=True)) == [first.pk]
    assert services.PayrollLine.objects.count() == 3

    # Another month of the same lines is another run; so is the same file once the first run is cancelled.
    next_month = services.import_payroll_file(
        employer=employer.org, user=employer.operator_user, filename="工资.csv", now=timezone.now(),
        data=builders.to_csv(builders.payroll_rows(rows, period="2025-07")))
    assert next_month.state == BatchState.VALIDATED
    services.cancel_batch(batch_id=first.pk, user=employer.operator_user, reason="重新上传", now=timezone.now())
    assert services.import_payroll_file(employer=employer.org, user=employer.operator_user, filename="工资.xlsx",
                                        data=again["工资.xlsx"], now=timezone.now()).state == BatchState.VALIDATED


def test_a_salary_that_came_back_after_the_run_was_paid_is_paid_again_or_returned(employer):
    """A paid run whose salary is reversed (冲正) afterwards: the line is not paid, yet the run could neither retry
    it, nor return it, nor be closed (retry and return answered not_paying, close lines_open)."""
    rows = staff(employer, 2)
    batch = approved_and_funded(employer, rows)
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    batch = services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
    assert batch.state == BatchState.PAID
    first, second = batch.lines.order_by("line_no")

    def reverse(line):
        transfer_services.reverse_transfer(transfer_id=line.transfer_id, reason="误发 (paid by mistake)", actor="x",
                                           now=timezone.now())
        line.refresh_from_db()
        assert selectors.line_is_actionable(line)
        assert selectors.can_act_on_lines(user=employer.operator_user, batch=PayrollBatch.objects.get(pk=batch.pk))

    reverse(first)

    # Paid again, once, under a new key; the run is paid again.
    services.retry_lines(batch_id=batch.pk, line_ids=[first.pk], user=employer.operator_user, now=timezone.now())
    first.refresh_from_db()
    assert first.transfer.idempotency_key == f"payroll:{batch.pk}:{first.line_no}:2"
    assert first.transfer.state == TransferState.SETTLED
    assert employer.sandbox.admin.balance(wallet_id=first.wallet_id) == first.net_fen
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID

    # Or given up: the run is then paid in part, and can be closed.
    reverse(second)
    batch = services.return_lines(batch_id=batch.pk, line_ids=[second.pk], user=employer.operator_user,
                                  reason="改用银行转账", now=timezone.now())
    assert batch.state == BatchState.PARTIALLY_PAID
    assert services.close_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now()).state == BatchState.CLOSED
    assert employer.sandbox.admin.balance(wallet_id=second.wallet_id) == 0
    assert check_ledger().problems == []


def test_a_retry_leaves_alone_the_money_another_funded_run_needs(employer, monkeypatch):
    """Funding sets a run's money aside from the wallet's other runs; a retry asked only whether the wallet held
    the retried lines' pay, so it could spend what a funded run was still to pay."""
    from types import SimpleNamespace

    rows, batch, line = with_a_failed_line(employer)
    other = approved_and_funded(employer, staff(employer, 1, start=50))
    assert other.state == BatchState.FUNDED
    balance = other.total_net_fen + line.net_fen - 1  # one fen short of both
    monkeypatch.setattr(services, "operator_balance", lambda wallet: SimpleNamespace(balance_fen=balance))
    with pytest.raises(PayrollError) as caught:
        services.retry_lines(batch_id=batch.pk, line_ids=[line.pk], user=employer.operator_user, now=timezone.now())
    assert caught.value.code == "insufficient_funds"
    assert f"{format_yuan(other.total_net_fen)} 已留给" in str(caught.value)
    line.refresh_from_db()
    assert line.attempts == 1 and line.transfer.state == TransferState.FAILED  # nothing was sent

    balance += 1
    services.retry_lines(batch_id=batch.pk, line_ids=[line.pk], user=employer.operator_user, now=timezone.now())
    line.refresh_from_db()
    assert line.transfer.state == TransferState.SETTLED


def test_funding_beside_a_paying_run_still_sets_aside_the_salaries_it_paid_after_the_balance_was_asked(
        employer, monkeypatch):
    """The wallet's balance is asked before its lock is taken. Salaries another run pays in between were still in
    the balance the operator gave: they are set aside all the same, not counted as gone (they were: funding then
    counted them neither in the balance's outflows nor in what the other run still had to pay)."""
    from types import SimpleNamespace

    paying = approved_and_funded(employer, staff(employer, 2))
    with monkeypatch.context() as patched:
        patched.setattr(services, "_queue_line_transfers", lambda batch_id, actor: None)
        services.pay_batch(batch_id=paying.pk, user=employer.operator_user, now=timezone.now())
    batch = upload(employer, staff(employer, 1, start=50))
    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    services.approve_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now())
    balance = paying.total_net_fen + batch.total_net_fen - 1  # when asked: one fen short of both runs

    def answered_then_the_other_run_pays(wallet):
        services.make_line_transfers(batch_id=paying.pk, actor="system", now=timezone.now())  # paid, recorded
        return SimpleNamespace(balance_fen=balance)

    monkeypatch.setattr(services, "operator_balance", answered_then_the_other_run_pays)
    with pytest.raises(PayrollError) as caught:
        services.fund_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now())
    assert caught.value.code == "insufficient_funds"
    assert PayrollBatch.objects.get(pk=batch.pk).state == BatchState.APPROVED
    assert PayrollBatch.objects.get(pk=paying.pk).state == BatchState.PAID

    # Asked again now, the balance no longer holds the salaries paid: what is left is enough, and nothing is held back.
    balance = batch.total_net_fen
    monkeypatch.setattr(services, "operator_balance", lambda wallet: SimpleNamespace(balance_fen=balance))
    assert services.fund_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now()).state == BatchState.FUNDED


def test_a_retry_beside_a_paying_run_still_sets_aside_the_salaries_it_paid_after_the_balance_was_asked(
        employer, monkeypatch):
    """As funding: a retry's balance is asked before the wallet's lock, and a run paying meanwhile is not let off."""
    from types import SimpleNamespace

    rows, batch, line = with_a_failed_line(employer)
    paying = approved_and_funded(employer, staff(employer, 2, start=50))
    with monkeypatch.context() as patched:
        patched.setattr(services, "_queue_line_transfers", lambda batch_id, actor: None)
        services.pay_batch(batch_id=paying.pk, user=employer.operator_user, now=timezone.now())
    balance = paying.total_net_fen + line.net_fen - 1

    def answered_then_the_other_run_pays(wallet):
        services.make_line_transfers(batch_id=paying.pk, actor="system", now=timezone.now())
        return SimpleNamespace(balance_fen=balance)

    monkeypatch.setattr(services, "operator_balance", answered_then_the_other_run_pays)
    with pytest.raises(PayrollError) as caught:
        services.retry_lines(batch_id=batch.pk, line_ids=[line.pk], user=employer.operator_user, now=timezone.now())
    assert caught.value.code == "insufficient_funds"
    line.refresh_from_db()
    assert line.attempts == 1 and line.transfer.state == TransferState.FAILED  # nothing was sent


def test_a_line_retried_while_the_run_is_paused_waits_for_the_resume(employer, monkeypatch):
    """Pausing holds what is not sent yet until the run is resumed; a failed line retried meanwhile is held too,
    not sent behind the pause."""
    from payroll.tasks import pay_chunk_task

    rows = staff(employer, 3)
    batch = approved_and_funded(employer, rows)
    employer.sandbox.admin.set_status(wallet_id=rows[0][3], status="frozen")
    queued = []  # the broker: nothing runs until we say so
    monkeypatch.setattr(pay_chunk_task, "apply_async", lambda kwargs: queued.append(kwargs))
    services.pay_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    failed = batch.lines.get(wallet_id=rows[0][3])
    services.pay_chunk(batch_id=batch.pk, transfer_ids=[failed.transfer_id], now=timezone.now())  # line 1 alone
    failed.refresh_from_db()
    assert failed.transfer.state == TransferState.FAILED
    services.pause_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now())
    for kwargs in queued:  # the rest of the chunk arrives while paused: held
        pay_chunk_task.apply(kwargs=kwargs)
    employer.sandbox.admin.set_status(wallet_id=rows[0][3], status="active")

    services.retry_lines(batch_id=batch.pk, line_ids=[failed.pk], user=employer.operator_user, now=timezone.now())
    failed.refresh_from_db()
    assert (failed.attempts, failed.transfer.state, failed.transfer.held) == (2, TransferState.PENDING, True)
    assert [employer.sandbox.admin.balance(wallet_id=row[3]) for row in rows] == [0, 0, 0]  # nothing behind the pause
    monkeypatch.undo()
    services.resume_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now())
    assert services.finish_batch_if_done(batch_id=batch.pk, now=timezone.now()).state == BatchState.PAID
    assert [employer.sandbox.admin.balance(wallet_id=row[3]) for row in rows] == [builders.net_fen(r) for r in rows]
    assert check_ledger().problems == []
