"""Registering parties' wallets and the ledger accounts that mirror them."""
from __future__ import annotations

from django.db import transaction

from adapters.ecny.interface import WalletBalance, WalletCheck
from treasury import bulk, identifiers
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


def ensure_personal_wallets(*, holders: list[tuple[str, str, str]]) -> dict[str, int]:
    """Make sure each (wallet id, holder name, resident ID) is a registered personal wallet; return
    {wallet_id: Wallet pk}. Unknown wallets are registered in bulk with the type and class the
    operator reports (one verification call per 1,000), their holders as persons, each with its
    ledger account. Call inside the caller's transaction.

    Raises:
        InvalidTransfers-style ValueError: the operator does not know a wallet, or no operator
            organization is registered for a wallet id's prefix.
    """
    from treasury.models import Organization, Person

    wanted = {wallet_id: (name, resident_id) for wallet_id, name, resident_id in holders}
    known = dict(Wallet.objects.filter(wallet_id__in=list(wanted)).values_list("wallet_id", "pk"))
    missing = [w for w in wanted if w not in known]
    if not missing:
        return known
    checks = {c.wallet_id: c for c in verify_wallets(pairs=[(w, wanted[w][0]) for w in missing])}
    unknown = [w for w in missing if not checks[w].exists]
    if unknown:
        raise ValueError(f"运营机构查无这些钱包 (the operator does not know these wallets): {len(unknown)}")
    operators = {
        org.code: org for org in Organization.objects.filter(org_type=Organization.Type.OPERATOR_BANK, code__in={w[:3] for w in missing})
    }
    without_operator = sorted({w[:3] for w in missing} - set(operators))
    if without_operator:
        raise ValueError(f"未登记的运营机构代码 (no operator registered for wallet prefix): {', '.join(without_operator)}")
    # Three bulk inserts with ids allocated up front (COPY on PostgreSQL): a payroll of 100,000 new
    # payees registers in seconds, not minutes.
    from django.utils import timezone

    created_at = bulk.datetime_param(timezone.now())
    people = dict(Person.objects.filter(resident_id__in=[wanted[w][1] for w in missing]).values_list("resident_id", "pk"))
    new_people = sorted({wanted[w][1]: wanted[w][0] for w in missing if wanted[w][1] not in people}.items())
    person_ids = bulk.allocate_ids(Person._meta.db_table, len(new_people))
    bulk.insert_rows(table=Person._meta.db_table, columns=["id", "name", "resident_id", "mobile", "created_at"],
                     rows=[(pk, name, rid, "", created_at) for pk, (rid, name) in zip(person_ids, new_people)])
    people.update({rid: pk for pk, (rid, _) in zip(person_ids, new_people)})
    wallet_ids = bulk.allocate_ids(Wallet._meta.db_table, len(missing))
    bulk.insert_rows(
        table=Wallet._meta.db_table,
        columns=["id", "wallet_id", "wallet_type", "wallet_class", "operator_id", "holder_org_id", "holder_person_id",
                 "holder_name", "status", "created_at"],
        rows=[(pk, w, checks[w].wallet_type or Wallet.Type.PERSONAL, checks[w].wallet_class, operators[w[:3]].pk, None,
               people[wanted[w][1]], wanted[w][0], Wallet.Status.ACTIVE, created_at)
              for pk, w in zip(wallet_ids, missing)],
    )
    bulk.insert_rows(
        table=LedgerAccount._meta.db_table,
        columns=["code", "name", "kind", "wallet_id", "organization_id", "balance_fen", "updated_at"],
        rows=[(f"wallet:{w}", wanted[w][0], LedgerAccount.Kind.WALLET, pk, None, 0, created_at)
              for pk, w in zip(wallet_ids, missing)],
    )
    known.update(zip(missing, wallet_ids))
    return known
