"""Registering parties' wallets and the ledger accounts that mirror them."""
from __future__ import annotations

from django.db import transaction

from adapters.ecny.interface import WalletBalance, WalletCheck
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


VERIFY_CHUNK = 1000  # wallets per operator call


def verify_wallets(*, pairs: list[tuple[str, str]]) -> list[WalletCheck]:
    """Ask the operator whether each (wallet id, holder name) exists, is active and matches: one call
    per 1,000 pairs, never one per line. Results in the order of `pairs`.

    Raises:
        OperatorUnavailable: the operator could not be asked; nothing is known (try again).
    """
    client = _operator()
    return [check for start in range(0, len(pairs), VERIFY_CHUNK) for check in client.verify_wallets(pairs[start : start + VERIFY_CHUNK])]


def operator_balance(*, wallet: Wallet) -> WalletBalance:
    """The wallet's balance at the operator now (our ledger keeps what moved through this service)."""
    return _operator().balance(wallet.wallet_id)


def _operator():
    from adapters.ecny.client import get_operator_client

    return get_operator_client()
