"""Registering parties' wallets and the ledger accounts that mirror them."""
from __future__ import annotations

from django.db import transaction

from treasury import identifiers
from treasury.models import LedgerAccount, Organization, Person, Wallet


def register_wallet(
    *,
    wallet_id: str,
    wallet_type: str,
    operator: Organization,
    holder_name: str,
    holder_org: Organization | None = None,
    holder_person: Person | None = None,
    wallet_class: int | None = None,
    account_kind: str = LedgerAccount.Kind.WALLET,
    account_name: str = "",
) -> Wallet:
    """Create a wallet and its ledger account (code ``wallet:<wallet_id>``) together.

    Every wallet that takes part in a transfer has exactly one ledger account: postings join on it.
    Treasury accounts (treasury single account, zero-balance accounts) are corporate wallets whose
    ledger account has the matching kind.

    Raises:
        InvalidIdentifier: the wallet id is not 16 digits.
        django.core.exceptions.ValidationError: holder or class rules broken.
    """
    wallet_id = identifiers.validate_wallet_id(wallet_id)
    with transaction.atomic():
        wallet = Wallet(
            wallet_id=wallet_id,
            wallet_type=wallet_type,
            wallet_class=wallet_class,
            operator=operator,
            holder_org=holder_org,
            holder_person=holder_person,
            holder_name=holder_name,
        )
        wallet.full_clean()
        wallet.save()
        LedgerAccount.objects.create(
            code=f"wallet:{wallet_id}",
            name=account_name or holder_name,
            kind=account_kind,
            wallet=wallet,
            organization=holder_org,
        )
    return wallet
