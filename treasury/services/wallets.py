"""Registering parties' wallets and the ledger accounts that mirror them."""
from __future__ import annotations

from django.db import connection, transaction

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


def registered_operator_codes() -> frozenset[str]:
    """The codes of the operators registered here, which begin their wallets' ids: a wallet under any other code
    is one no operator this service pays through holds (a handful of rows)."""
    return frozenset(Organization.objects.filter(org_type=Organization.Type.OPERATOR_BANK).values_list("code", flat=True))


def verify_wallets(*, pairs: list[tuple[str, str]], operator_codes: frozenset[str] | None = None) -> list[WalletCheck]:
    """Ask the operator whether each (wallet id, holder name) exists, is active and matches: one call
    per 1,000 pairs, never one per line. Results in the order of `pairs`.

    A wallet whose id starts with the code of no operator registered here is answered as not existing,
    without asking: no operator this service pays through holds it, so it could be checked now and never
    paid later (registering its holder needs its operator). `operator_codes` are `registered_operator_codes()`
    read by a caller that cannot query meanwhile (one streaming rows into an open COPY); read here otherwise.

    Raises:
        OperatorUnavailable: the operator could not be asked; nothing is known (try again).
    """
    if operator_codes is None:
        operator_codes = registered_operator_codes()
    reachable = [pair for pair in pairs if pair[0][:3] in operator_codes]
    client = _operator()
    answers = iter([check for start in range(0, len(reachable), VERIFY_CHUNK)
                    for check in client.verify_wallets(reachable[start : start + VERIFY_CHUNK])])
    return [next(answers) if wallet_id[:3] in operator_codes else WalletCheck(wallet_id=wallet_id, exists=False)
            for wallet_id, _ in pairs]


def operator_balance(*, wallet: Wallet) -> WalletBalance:
    """The wallet's balance at the operator now (our ledger keeps what moved through this service)."""
    return _operator().balance(wallet.wallet_id)


def _operator():
    from adapters.ecny.client import get_operator_client

    return get_operator_client()


def ensure_personal_wallets(
    *, holders: list[tuple[str, str, str]], known_checks: dict[str, WalletCheck] | None = None
) -> dict[str, int]:
    """Make sure each (wallet id, holder name, resident ID) is a registered personal wallet; return
    {wallet_id: Wallet pk}. Unknown wallets are registered in bulk with the type and class the
    operator reports (one verification call per 1,000), their holders as persons, each with its
    ledger account. Call inside the caller's transaction.

    `known_checks` ({wallet_id: WalletCheck}) are the operator's answers the caller already has (the
    import verified every payee's wallet): those wallets are registered from them without asking the
    operator again; only wallets missing from it are verified here.

    Raises:
        InvalidTransfers-style ValueError: the operator does not know a wallet, or no operator
            organization is registered for a wallet id's prefix.
    """
    from treasury.models import Organization, Person

    wanted = {wallet_id: (name, resident_id) for wallet_id, name, resident_id in holders}
    known = _pks_by("wallet_id", Wallet._meta.db_table, list(wanted))
    missing = [w for w in wanted if w not in known]
    if not missing:
        return known
    checks = {w: known_checks[w] for w in missing if known_checks and w in known_checks}
    to_verify = [w for w in missing if w not in checks]
    if to_verify:
        checks.update((c.wallet_id, c) for c in verify_wallets(pairs=[(w, wanted[w][0]) for w in to_verify]))
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

    created_at = bulk.copy_time(timezone.now())
    people = _pks_by("resident_id", Person._meta.db_table, list({wanted[w][1] for w in missing}))
    new_people = sorted({wanted[w][1]: wanted[w][0] for w in missing if wanted[w][1] not in people}.items())
    person_ids = bulk.allocate_ids(Person._meta.db_table, len(new_people))
    bulk.insert_rows(table=Person._meta.db_table, columns=["id", "name", "resident_id", "mobile", "created_at"],
                     rows=[(pk, name, rid, "", created_at) for pk, (rid, name) in zip(person_ids, new_people)])
    people.update({rid: pk for pk, (rid, _) in zip(person_ids, new_people)})
    wallet_ids = bulk.allocate_ids(Wallet._meta.db_table, len(missing))
    # The choices' values read once, not per row (an enum member read is a descriptor call, 0.15 µs).
    personal, active = Wallet.Type.PERSONAL.value, Wallet.Status.ACTIVE.value
    wallet_account = LedgerAccount.Kind.WALLET.value
    operator_pks = {code: org.pk for code, org in operators.items()}
    bulk.insert_rows(
        table=Wallet._meta.db_table,
        columns=["id", "wallet_id", "wallet_type", "wallet_class", "operator_id", "holder_org_id", "holder_person_id",
                 "holder_name", "status", "created_at"],
        rows=[(pk, w, checks[w].wallet_type or personal, checks[w].wallet_class, operator_pks[w[:3]], None,
               people[wanted[w][1]], wanted[w][0], active, created_at)
              for pk, w in zip(wallet_ids, missing)],
    )
    bulk.insert_rows(
        table=LedgerAccount._meta.db_table,
        columns=["code", "name", "kind", "wallet_id", "organization_id", "balance_fen", "updated_at"],
        rows=[("wallet:" + w, wanted[w][0], wallet_account, pk, None, 0, created_at)
              for pk, w in zip(wallet_ids, missing)],
    )
    known.update(zip(missing, wallet_ids))
    return known


def _pks_by(column: str, table: str, values: list) -> dict:
    """{value: pk} of the rows of `table` whose `column` is among `values`: one query, one array
    parameter on PostgreSQL (an ORM IN list of thousands of parameters costs more to build than to run)."""
    found = {}
    with connection.cursor() as cursor:
        for start in range(0, len(values), 5000):  # SQLite binds at most 32,766 parameters
            where, params = bulk.in_clause(column, values[start : start + 5000])
            cursor.execute(f"SELECT {column}, id FROM {table} WHERE {where}", params)
            found.update(cursor.fetchall())
    return found


def operator_statement(*, wallet: Wallet, day) -> list:
    """Every booking the operator holds on the wallet for one business day (for reconciliation).

    Raises:
        OperatorUnavailable: the operator could not be asked (try again later).
        OperatorRejected: the operator does not know the wallet.
    """
    return _operator().statement(wallet.wallet_id, day)
