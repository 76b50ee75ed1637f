import pytest

from tests import factories as f
from treasury.access.errors import AccessDenied, MakerCheckerViolation
from treasury.access.makerchecker import ensure_can_approve

APPROVERS = ("finance_approver",)


@pytest.mark.django_db
def test_preparer_cannot_approve_own_work():
    approver = f.make_user(role="finance_approver")
    with pytest.raises(MakerCheckerViolation) as caught:
        ensure_can_approve(approver=approver, prepared_by_id=approver.pk, approver_roles=APPROVERS)
    assert caught.value.code == "maker_checker"


@pytest.mark.django_db
def test_another_approver_may_approve():
    clerk = f.make_user(role="finance_clerk")
    approver = f.make_user(role="finance_approver", organization=clerk.membership.organization)
    ensure_can_approve(approver=approver, prepared_by_id=clerk.pk, approver_roles=APPROVERS)  # no exception


@pytest.mark.django_db
def test_a_clerk_without_the_approving_role_cannot_approve():
    preparer = f.make_user(role="finance_clerk")
    other_clerk = f.make_user(role="finance_clerk")
    with pytest.raises(AccessDenied) as caught:
        ensure_can_approve(approver=other_clerk, prepared_by_id=preparer.pk, approver_roles=APPROVERS)
    assert caught.value.code == "not_an_approver"
    assert not isinstance(caught.value, MakerCheckerViolation)


@pytest.mark.django_db
def test_the_same_person_cannot_give_the_second_approval():
    first = f.make_user(role="finance_approver")
    with pytest.raises(MakerCheckerViolation):
        ensure_can_approve(approver=first, prepared_by_id=None, approver_roles=APPROVERS, also_not=(first.pk,))
    second = f.make_user(role="finance_approver")
    ensure_can_approve(approver=second, prepared_by_id=None, approver_roles=APPROVERS, also_not=(first.pk,))
