"""Integration (PostgreSQL row locks): two approvals of requests against one quota at the same moment
never reserve more than the quota holds; the same voucher sent by two deliveries at once is reserved
once and paid once."""
import pytest
from django.utils import timezone

from fiscal_disbursement import services
from fiscal_disbursement.models import PaymentLine, PaymentRequest, Quota
from fiscal_disbursement.models import RequestState as R
from tests.concurrency import at_once
from tests.fiscal_disbursement.helpers import QUOTA_ID, UNIT_QUOTA_ID, payee_rows, refreshed, submitted
from treasury.models import Transfer, TransferState
from treasury.services.ledger import check_ledger

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("needs_postgresql")]



def test_concurrent_approvals_never_overdraw_the_quota(finance):
    # Two requests of 600,000 yuan each against a quota of 1,000,000: only one can be reserved.
    first = submitted(finance, payee_rows(finance, 2), amount_yuan="300000.00")
    second = submitted(finance, payee_rows(finance, 2), amount_yuan="300000.00")
    finance.budget.admin.set_fault("fault", operation="SubmitVoucher", count=2)  # keep both at approved
    outcomes = at_once(
        lambda: services.approve_request(request_id=first.pk, user=finance.approver, now=timezone.now()),
        lambda: services.approve_request(request_id=second.pk, user=finance.approver2, now=timezone.now()),
    )
    refused = [o for o in outcomes if isinstance(o, services.DisbursementError)]
    assert len(refused) == 1 and refused[0].code == "quota_insufficient"
    assert sorted(refreshed(r).state for r in (first, second)) == [R.APPROVED, R.SUBMITTED]
    assert Quota.objects.get(quota_id=QUOTA_ID).reserved_fen == 600_000_00


def test_one_voucher_delivered_twice_at_once_is_reserved_and_paid_once(finance):
    rows = payee_rows(finance, 3)
    request = submitted(finance, rows)
    finance.budget.admin.set_fault("fault", operation="SubmitVoucher", count=1)  # the after-commit send fails
    services.approve_request(request_id=request.pk, user=finance.approver, now=timezone.now())
    assert refreshed(request).state == R.APPROVED

    at_once(*[lambda: services.send_voucher(request_id=request.pk, now=timezone.now())] * 2)
    services.start_paying(request_id=request.pk, now=timezone.now())
    request = PaymentRequest.objects.get(pk=request.pk)
    assert request.state == R.REPORTED
    assert Transfer.objects.filter(batch_ref=request.batch_ref).count() == 3
    for _, _, wallet_id in rows:
        assert finance.ecny.admin.balance(wallet_id=wallet_id) == 1000_00
    theirs = finance.budget.admin.quota(quota_id=QUOTA_ID)
    assert (theirs["used_fen"], theirs["reserved_fen"]) == (3_000_00, 0)


def quota_figures(finance):
    ours = Quota.objects.get(quota_id=QUOTA_ID)
    theirs = finance.budget.admin.quota(quota_id=QUOTA_ID)
    return (ours.consumed_fen, ours.reserved_fen), (theirs["used_fen"], theirs["reserved_fen"])


def with_a_failed_line(finance):
    """A request of two payees paid in part: the second's wallet was frozen while paying, active again since."""
    rows = payee_rows(finance, 2)
    request = submitted(finance, rows)
    finance.ecny.admin.set_status(wallet_id=rows[1][2], status="frozen")
    services.approve_request(request_id=request.pk, user=finance.approver, now=timezone.now())
    request = refreshed(request)
    assert request.state == R.PARTIALLY_PAID
    finance.ecny.admin.set_status(wallet_id=rows[1][2], status="active")
    return rows, request, request.lines.get(line_no=3)


def test_two_returns_of_a_failed_line_at_once_release_it_on_the_quota_once(finance):
    rows, request, line = with_a_failed_line(finance)
    outcomes = at_once(*[lambda: services.return_lines(request_id=request.pk, line_ids=[line.pk], user=finance.clerk,
                                                       reason="收款人已故", now=timezone.now())] * 2)
    refused = [o for o in outcomes if isinstance(o, services.DisbursementError)]
    assert sum(isinstance(o, PaymentRequest) for o in outcomes) == 1, outcomes
    assert len(refused) == 1 and refused[0].code in ("unknown_lines", "not_finished"), outcomes
    request = refreshed(request)
    assert request.state == R.REPORTED and (request.returned_count, request.returned_fen) == (1, 1000_00)
    assert quota_figures(finance) == ((1000_00, 0), (1000_00, 0))
    assert finance.ecny.admin.balance(wallet_id=rows[1][2]) == 0
    assert check_ledger().problems == []


def test_a_retry_and_a_return_of_a_failed_line_at_once_do_one_of_them(finance):
    rows, request, line = with_a_failed_line(finance)
    outcomes = at_once(
        lambda: services.retry_lines(request_id=request.pk, line_ids=[line.pk], user=finance.clerk,
                                     now=timezone.now()),
        lambda: services.return_lines(request_id=request.pk, line_ids=[line.pk], user=finance.clerk,
                                      reason="收款人已故", now=timezone.now()),
    )
    refused = [o for o in outcomes if isinstance(o, services.DisbursementError)]
    assert sum(isinstance(o, PaymentRequest) for o in outcomes) == 1, outcomes
    assert len(refused) == 1 and refused[0].code in ("unknown_lines", "not_finished", "line_not_failed"), outcomes
    request, line = refreshed(request), PaymentLine.objects.get(pk=line.pk)
    assert request.state == R.REPORTED
    paid = finance.ecny.admin.balance(wallet_id=rows[1][2])
    if line.returned:
        assert line.attempts == 1 and paid == 0
        assert quota_figures(finance) == ((1000_00, 0), (1000_00, 0))
    else:
        assert line.attempts == 2 and line.transfer.state == TransferState.SETTLED and paid == 1000_00
        assert quota_figures(finance) == ((2000_00, 0), (2000_00, 0))
    assert Transfer.objects.filter(batch_ref=request.batch_ref, state=TransferState.SETTLED).count() == (
        1 if line.returned else 2)
    assert check_ledger().problems == []


def test_two_retries_of_a_failed_line_at_once_pay_it_once(finance):
    rows, request, line = with_a_failed_line(finance)
    outcomes = at_once(*[lambda: services.retry_lines(request_id=request.pk, line_ids=[line.pk], user=finance.clerk,
                                                      now=timezone.now())] * 2)
    refused = [o for o in outcomes if isinstance(o, services.DisbursementError)]
    assert sum(isinstance(o, PaymentRequest) for o in outcomes) == 1, outcomes
    assert len(refused) == 1 and refused[0].code in ("not_finished", "line_not_failed"), outcomes
    assert refreshed(request).state == R.REPORTED
    assert finance.ecny.admin.balance(wallet_id=rows[1][2]) == 1000_00
    assert Transfer.objects.filter(batch_ref=request.batch_ref).count() == 3  # two lines, one of them twice
    assert quota_figures(finance) == ((2000_00, 0), (2000_00, 0))
    assert check_ledger().problems == []


def test_approving_and_cancelling_a_request_at_once_reserve_nothing_left_behind(finance):
    rows = payee_rows(finance, 2)
    request = submitted(finance, rows)
    outcomes = at_once(
        lambda: services.approve_request(request_id=request.pk, user=finance.approver, now=timezone.now()),
        lambda: services.cancel_request(request_id=request.pk, user=finance.clerk, reason="重复申请",
                                        now=timezone.now()),
    )
    request = refreshed(request)
    if request.state == R.CANCELLED:  # the cancellation came first, or found the voucher not yet anywhere
        assert not Transfer.objects.filter(batch_ref=request.batch_ref).exists()
        services.resend_pending(now=timezone.now())  # any report of returned lines reaches the budget system
        assert quota_figures(finance) == ((0, 0), (0, 0))
        assert [finance.ecny.admin.balance(wallet_id=w) for _, _, w in rows] == [0, 0]
    else:  # approved first: paid, and the cancellation refused
        assert isinstance(outcomes[0], PaymentRequest) and isinstance(outcomes[1], Exception), outcomes
        assert request.state == R.REPORTED
        assert quota_figures(finance) == ((2000_00, 0), (2000_00, 0))
        assert [finance.ecny.admin.balance(wallet_id=w) for _, _, w in rows] == [1000_00] * 2
    assert check_ledger().problems == []


def test_the_voucher_sent_while_the_request_is_cancelled_leaves_no_reservation_behind(finance):
    rows = payee_rows(finance, 2)
    request = submitted(finance, rows)
    finance.budget.admin.set_fault("fault", operation="SubmitVoucher", count=1)  # the after-commit send fails
    services.approve_request(request_id=request.pk, user=finance.approver, now=timezone.now())
    assert refreshed(request).state == R.APPROVED
    outcomes = at_once(
        lambda: services.send_voucher(request_id=request.pk, now=timezone.now()),
        lambda: services.cancel_request(request_id=request.pk, user=finance.clerk, reason="重复申请",
                                        now=timezone.now()),
    )
    services.resend_pending(now=timezone.now())
    request = refreshed(request)
    if request.state == R.CANCELLED:
        assert isinstance(outcomes[1], PaymentRequest), outcomes
        assert not Transfer.objects.filter(batch_ref=request.batch_ref).exists()
        assert quota_figures(finance) == ((0, 0), (0, 0))
    else:
        assert request.state == R.REPORTED, outcomes
        assert quota_figures(finance) == ((2000_00, 0), (2000_00, 0))
        assert [finance.ecny.admin.balance(wallet_id=w) for _, _, w in rows] == [1000_00] * 2
    assert check_ledger().problems == []


def test_two_requests_starting_to_pay_at_once_from_one_account_never_spend_the_same_money(finance, monkeypatch):
    """The unit's account holds 1,500 yuan; two requests of 1,000 each have their vouchers accepted and start
    paying at the same moment: one pays, the other waits for money with the reason; no payee's transfer fails
    for want of it."""
    from fiscal_disbursement import tasks

    requests, rows = [], []
    with monkeypatch.context() as not_yet:
        not_yet.setattr(tasks.start_paying_task, "apply_async", lambda **kwargs: None)  # started below, together
        for _ in range(2):
            rows.append(payee_rows(finance, 1))
            request = submitted(finance, rows[-1], pay_type="2", quota_id=UNIT_QUOTA_ID)
            services.approve_request(request_id=request.pk, user=finance.approver, now=timezone.now())
            assert refreshed(request).state == R.VOUCHER_ISSUED
            requests.append(request)
    at_once(*[lambda r=r: services.start_paying(request_id=r.pk, now=timezone.now()) for r in requests])
    assert sorted(refreshed(r).state for r in requests) == [R.REPORTED, R.VOUCHER_ISSUED]
    assert not Transfer.objects.filter(state=TransferState.FAILED).exists()
    waiting = next(r for r in requests if refreshed(r).state == R.VOUCHER_ISSUED)
    assert "余额不足" in refreshed(waiting).voucher_error
    assert not Transfer.objects.filter(batch_ref=waiting.batch_ref).exists()
    assert sorted(finance.ecny.admin.balance(wallet_id=payees[0][2]) for payees in rows) == [0, 1000_00]
    assert check_ledger().problems == []
