"""Read paths, already scoped: an individual sees only their own enrolment, payments and months; tax staff
see the enrolments their tax authority collects; auditors and administrators see all (auditors read only)."""
from __future__ import annotations

from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404

from treasury.access import roles
from treasury.access.scoping import individual_person, sees_all_organizations, user_organization, user_person

from .models import Enrolment, Payment, Period, PeriodState

STAFF_ROLES = (roles.TAX_STAFF, roles.AUDITOR, roles.ADMIN)


def is_individual(user) -> bool:
    return individual_person(user) is not None


def visible_enrolments(user) -> QuerySet[Enrolment]:
    base = Enrolment.objects.select_related("person", "region", "wallet", "collecting_authority")
    if sees_all_organizations(user):
        return base
    if roles.has_role(user, roles.TAX_STAFF):
        org = user_organization(user)
        if org is not None:
            return base.filter(collecting_authority=org)
    if is_individual(user):
        return base.filter(person=user_person(user))
    return base.none()


def enrolment_get(*, user, enrolment_id: int) -> Enrolment:
    """404 for an enrolment the user may not see, like one that does not exist."""
    enrolment = visible_enrolments(user).filter(pk=enrolment_id).first()
    if enrolment is None:
        raise Http404("no such enrolment")
    return enrolment


def my_enrolment(user) -> Enrolment | None:
    person = user_person(user)
    if person is None:
        return None
    return visible_enrolments(user).filter(person=person).first()


def visible_payments(user) -> QuerySet[Payment]:
    return (Payment.objects.filter(enrolment__in=visible_enrolments(user).values("pk"))
            .select_related("enrolment__person", "transfer", "wallet"))


def payment_get(*, user, payment_id: int) -> Payment:
    payment = visible_payments(user).filter(pk=payment_id).first()
    if payment is None:
        raise Http404("no such payment")
    return payment


def visible_periods(user) -> QuerySet[Period]:
    return Period.objects.filter(enrolment__in=visible_enrolments(user).values("pk"))


def staff_enrolments(*, user, today, region: str = "", search: str = "",
                     in_arrears: bool = False) -> QuerySet[Enrolment]:
    """Enrolments with their arrears (months due and past their due date) counted and summed."""
    overdue = Q(periods__state=PeriodState.DUE, periods__due_date__lt=today)
    qs = visible_enrolments(user).annotate(
        overdue_months=Count("periods", filter=overdue),
        arrears_fen=Sum("periods__total_fen", filter=overdue),
        paid_months=Count("periods", filter=Q(periods__state=PeriodState.PAID)),
    )
    if region:
        qs = qs.filter(region__code=region)
    if search:
        qs = qs.filter(Q(person__name__icontains=search) | Q(person__resident_id=search.upper()))
    if in_arrears:
        qs = qs.filter(overdue_months__gt=0)
    return qs.order_by("-created_at", "-pk")
