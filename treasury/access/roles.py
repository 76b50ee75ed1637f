"""Roles are Django groups with these names (created by a data migration)."""
from django.utils.translation import gettext_lazy as _

FINANCE_CLERK = "finance_clerk"
FINANCE_APPROVER = "finance_approver"
TAX_STAFF = "tax_staff"
EMPLOYER_OPERATOR = "employer_operator"
EMPLOYER_APPROVER = "employer_approver"
AUDITOR = "auditor"
ADMIN = "admin"
# A person acting for themselves (a flexible-employment insured paying premiums): linked to a treasury
# Person by `PersonalAccount`, no organization, sees only their own records.
INDIVIDUAL = "individual"

ALL_ROLES = (FINANCE_CLERK, FINANCE_APPROVER, TAX_STAFF, EMPLOYER_OPERATOR, EMPLOYER_APPROVER, AUDITOR, ADMIN,
             INDIVIDUAL)
# Roles that see every organization's data (read-only for auditors).
CROSS_ORGANIZATION_ROLES = (AUDITOR, ADMIN)


def user_roles(user) -> set[str]:
    if not getattr(user, "is_authenticated", False):
        return set()
    cached = getattr(user, "_role_names", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        if user.is_superuser:
            cached.add(ADMIN)
        user._role_names = cached
    return cached


def has_role(user, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))


# What people read for each role (pages, admin); the group names above stay English identifiers.
ROLE_LABELS = {
    FINANCE_CLERK: _("Finance clerk"),
    FINANCE_APPROVER: _("Finance approver"),
    TAX_STAFF: _("Tax staff"),
    EMPLOYER_OPERATOR: _("Employer operator"),
    EMPLOYER_APPROVER: _("Employer approver"),
    AUDITOR: _("Auditor"),
    ADMIN: _("Administrator"),
    INDIVIDUAL: "个人 (individual)",  # bilingual: the message catalogue has no entry for it yet
}


def is_read_only(user) -> bool:
    """Auditors look at everything and change nothing (unless they are also administrators)."""
    return has_role(user, AUDITOR) and not has_role(user, ADMIN)
