"""Integration (PostgreSQL row locks): two approvals of requests against one quota at the same moment
never reserve more than the quota holds; the same voucher sent by two deliveries at once is reserved
once and paid once."""
import pytest
from django.utils import timezone

from fiscal_disbursement import services
from fiscal_disbursement.models import PaymentRequest, Quota
from fiscal_disbursement.models import RequestState as R
from tests.concurrency import at_once
from tests.fiscal_disbursement.helpers import QUOTA_ID, payee_rows, refreshed, submitted
from treasury.models import Transfer

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
