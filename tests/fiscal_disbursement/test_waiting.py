"""What waits for whom on the dashboard (treasury.waiting): approvers see the requests they may approve (not
their own first approval), clerks the requests sent back to them; nobody sees another bureau's."""
from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from fiscal_disbursement import services
from fiscal_disbursement.models import RequestState as R
from tests import factories as f
from tests.clients import logged_in
from tests.fiscal_disbursement.helpers import payee_rows, submitted
from treasury.access import roles
from treasury.models import Organization
from treasury.waiting import waiting_for


def waiting(user) -> dict[str, int]:
    return {item.key: item.count for item in waiting_for(user)}


def test_requests_wait_for_the_approvers_who_may_approve_them_then_for_the_clerk(finance, settings):
    settings.DISBURSEMENT_SECOND_APPROVAL_FEN = 1_500_00
    request = submitted(finance, payee_rows(finance, 2))  # 2,000 yuan: two approvers
    assert waiting(finance.approver) == waiting(finance.approver2) == {"fiscal_to_approve": 1}
    assert waiting(finance.clerk) == {}
    services.approve_request(request_id=request.pk, user=finance.approver, now=timezone.now())
    assert waiting(finance.approver) == {}  # approved first: the second approval is someone else's
    assert waiting(finance.approver2) == {"fiscal_to_approve": 1}

    services.reject_request(request_id=request.pk, user=finance.approver2, reason="补充审批文件", now=timezone.now())
    assert waiting(finance.approver2) == {} and waiting(finance.clerk) == {"fiscal_returned": 1}
    html = logged_in(finance.clerk).get(reverse("dashboard")).content.decode()
    link = f'{reverse("fiscal:request_list")}?state={R.REJECTED}'
    assert 'data-waiting="fiscal_returned"' in html and f'href="{link}"' in html
    assert f'data-request="{request.pk}"' in logged_in(finance.clerk).get(link).content.decode()

    other_bureau = f.make_organization(org_type=Organization.Type.FINANCE_BUREAU)
    assert waiting(f.make_user(role=roles.FINANCE_CLERK, organization=other_bureau)) == {}
    assert waiting(f.make_user(role=roles.AUDITOR)) == {}  # reads, takes no step
    assert 'data-testid="waiting"' not in logged_in(finance.approver).get(reverse("dashboard")).content.decode()
