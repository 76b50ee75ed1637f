"""Object-level scoping: the one place that says which rows a user may see.

Selectors and views start from these querysets, never from `Model.objects.all()`.
"""
from django.db.models import Q

from treasury.models import Organization, Person, Transfer, Wallet

from .roles import CROSS_ORGANIZATION_ROLES, INDIVIDUAL, has_role


def user_organization(user) -> Organization | None:
    membership = getattr(user, "membership", None) if getattr(user, "is_authenticated", False) else None
    return membership.organization if membership else None


def user_person(user) -> Person | None:
    """The person a user stands for (role `individual`, linked by `PersonalAccount`), else None."""
    account = getattr(user, "personal_account", None) if getattr(user, "is_authenticated", False) else None
    return account.person if account else None


def individual_person(user) -> Person | None:
    """The person a user acting for themselves stands for: role `individual` and a linked person, else None."""
    return user_person(user) if has_role(user, INDIVIDUAL) else None


def sees_all_organizations(user) -> bool:
    return has_role(user, *CROSS_ORGANIZATION_ROLES)


def visible_transfers(user):
    """Transfers run on behalf of the user's organization, or paying from / into its wallets."""
    if sees_all_organizations(user):
        return Transfer.objects.all()
    org = user_organization(user)
    if org is None:
        person = user_person(user)
        if person is None:
            return Transfer.objects.none()
        return Transfer.objects.filter(Q(payer__holder_person=person) | Q(payee__holder_person=person))
    return Transfer.objects.filter(Q(organization=org) | Q(payer__holder_org=org) | Q(payee__holder_org=org))


def visible_wallets(user):
    if sees_all_organizations(user):
        return Wallet.objects.all()
    org = user_organization(user)
    if org is None:
        person = user_person(user)
        return Wallet.objects.filter(holder_person=person) if person else Wallet.objects.none()
    return Wallet.objects.filter(holder_org=org)
