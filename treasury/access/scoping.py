"""Object-level scoping: the one place that says which rows a user may see.

Selectors and views start from these querysets, never from `Model.objects.all()`.
"""
from django.db.models import Q

from treasury.models import Organization, Transfer, Wallet

from .roles import CROSS_ORGANIZATION_ROLES, has_role


def user_organization(user) -> Organization | None:
    membership = getattr(user, "membership", None) if getattr(user, "is_authenticated", False) else None
    return membership.organization if membership else None


def sees_all_organizations(user) -> bool:
    return has_role(user, *CROSS_ORGANIZATION_ROLES)


def visible_transfers(user):
    """Transfers run on behalf of the user's organization, or paying from / into its wallets."""
    if sees_all_organizations(user):
        return Transfer.objects.all()
    org = user_organization(user)
    if org is None:
        return Transfer.objects.none()
    return Transfer.objects.filter(Q(organization=org) | Q(payer__holder_org=org) | Q(payee__holder_org=org))


def visible_wallets(user):
    if sees_all_organizations(user):
        return Wallet.objects.all()
    org = user_organization(user)
    if org is None:
        return Wallet.objects.none()
    return Wallet.objects.filter(holder_org=org)
