"""What waits for whom on the dashboard (treasury.waiting): the employer's operators see checked runs to
submit and approved runs to fund, its approvers the runs someone else submitted; no other employer's."""
from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from payroll import services
from payroll.models import BatchState as B
from payroll.models import PayrollBatch
from tests import factories as f
from tests.clients import logged_in
from tests.payroll.helpers import staff, upload
from treasury.access import roles
from treasury.models import Organization
from treasury.waiting import waiting_for


def waiting(user) -> dict[str, int]:
    return {item.key: item.count for item in waiting_for(user)}


def test_a_payroll_run_waits_for_each_next_step_and_its_person(employer):
    batch = upload(employer, staff(employer, 2))
    assert batch.state == B.VALIDATED
    assert waiting(employer.operator_user) == {"payroll_to_submit": 1} and waiting(employer.approver) == {}
    html = logged_in(employer.operator_user).get(reverse("dashboard")).content.decode()
    assert 'data-waiting="payroll_to_submit"' in html
    assert f'href="{reverse("payroll:batch-list")}?state={B.VALIDATED}"' in html

    services.submit_batch(batch_id=batch.pk, user=employer.operator_user, now=timezone.now())
    assert waiting(employer.operator_user) == {} and waiting(employer.approver) == {"payroll_to_approve": 1}
    PayrollBatch.objects.filter(pk=batch.pk).update(prepared_by=employer.approver)
    assert waiting(employer.approver) == {}  # never one's own run to approve
    PayrollBatch.objects.filter(pk=batch.pk).update(prepared_by=employer.operator_user)

    services.approve_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now())
    assert waiting(employer.operator_user) == waiting(employer.approver) == {"payroll_to_fund": 1}
    services.fund_batch(batch_id=batch.pk, user=employer.approver, now=timezone.now())
    assert waiting(employer.operator_user) == waiting(employer.approver) == {}

    other = Organization.objects.create(name="另一家公司", org_type=Organization.Type.EMPLOYER, uscc=f.make_uscc())
    upload(employer, staff(employer, 1, start=3))
    assert waiting(f.make_user(role=roles.EMPLOYER_OPERATOR, organization=other)) == {}
    assert waiting(employer.operator_user) == {"payroll_to_submit": 1}
