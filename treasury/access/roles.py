"""Roles are Django groups with these names (created by a data migration)."""

FINANCE_CLERK = "finance_clerk"
FINANCE_APPROVER = "finance_approver"
TAX_STAFF = "tax_staff"
EMPLOYER_OPERATOR = "employer_operator"
EMPLOYER_APPROVER = "employer_approver"
AUDITOR = "auditor"
ADMIN = "admin"

ALL_ROLES = (FINANCE_CLERK, FINANCE_APPROVER, TAX_STAFF, EMPLOYER_OPERATOR, EMPLOYER_APPROVER, AUDITOR, ADMIN)
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
