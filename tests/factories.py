"""Plain functions that make valid rows for tests of every area. Each call makes new, unique
identifiers, so tests never collide; pass what matters to your test and let the rest default.

    org = make_organization(org_type="employer")
    clerk = make_user(role="employer_operator", organization=org)
    payer = make_wallet(holder_org=org)
    payee = make_wallet(holder_person=make_person())
    t = make_transfer(payer=payer, payee=payee, state="settled", amount_fen=123_45)
"""
from __future__ import annotations

import datetime as dt
import itertools

from django.contrib.auth.models import Group, User
from django.utils import timezone
from stdnum.cn import ric, uscc

from treasury.access.models import Membership
from treasury.models import LedgerAccount, Organization, Person, Transfer, Wallet

PASSWORD = "correct-horse-battery"
# Operator codes of the sandbox: the first 3 digits of a wallet id.
DEFAULT_OPERATOR_CODE = "101"

_seq = itertools.count(1)


def _next() -> int:
    return next(_seq)


def make_uscc() -> str:
    """A unique, checksum-valid unified social credit code (GB 32100)."""
    first17 = f"913101{_next():011d}"  # 91 = enterprise, 310100 region, then 10 digits of our counter
    return first17 + uscc.calc_check_digit(first17)  # takes the 17 characters without the check


def make_resident_id(*, birth_date: dt.date = dt.date(1990, 5, 17)) -> str:
    """A unique, checksum-valid resident identity number (GB 11643), region 110105 (Beijing Chaoyang)."""
    n = _next()
    born = birth_date + dt.timedelta(days=n // 1000)  # 1,000 sequence numbers a day, then the next day
    body = f"110105{born:%Y%m%d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")  # takes all 18, ignores the last


def make_organization(*, org_type: str = Organization.Type.EMPLOYER, name: str | None = None, code: str = "",
                      parent: Organization | None = None) -> Organization:
    n = _next()
    return Organization.objects.create(
        name=name or f"{Organization.Type(org_type).name.title().replace('_', ' ')} {n}",
        org_type=org_type,
        uscc=make_uscc(),
        code=code,
        parent=parent,
    )


def make_operator(*, code: str = DEFAULT_OPERATOR_CODE) -> Organization:
    """The operator bank whose wallet ids start with `code` (one per code)."""
    existing = Organization.objects.filter(org_type=Organization.Type.OPERATOR_BANK, code=code).first()
    return existing or make_organization(org_type=Organization.Type.OPERATOR_BANK, name=f"Operator {code}", code=code)


def make_person(*, name: str = "张三丰", resident_id: str | None = None) -> Person:
    return Person.objects.create(name=name, resident_id=resident_id or make_resident_id())


def make_user(*, role: str | None = None, organization: Organization | None = None, username: str | None = None,
              password: str = PASSWORD, **fields) -> User:
    """A user holding `role` (a group from treasury.access.roles) who works for `organization`.

    No organization given: one is made (employers for employer roles, the finance bureau for finance
    roles, ...), except for auditors and admins, who see every organization.
    """
    user = User.objects.create_user(username=username or f"{role or 'user'}{_next()}", password=password, **fields)
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    if organization is None and role not in ("auditor", "admin", None):
        organization = make_organization(org_type=_ORG_TYPE_FOR_ROLE.get(role, Organization.Type.EMPLOYER))
    if organization is not None:
        Membership.objects.create(user=user, organization=organization)
    return user


_ORG_TYPE_FOR_ROLE = {
    "finance_clerk": Organization.Type.FINANCE_BUREAU,
    "finance_approver": Organization.Type.FINANCE_BUREAU,
    "tax_staff": Organization.Type.TAX_AUTHORITY,
    "employer_operator": Organization.Type.EMPLOYER,
    "employer_approver": Organization.Type.EMPLOYER,
}


def make_wallet_id(*, operator_code: str = DEFAULT_OPERATOR_CODE) -> str:
    return f"{operator_code}{_next():013d}"


def make_wallet(*, holder_org: Organization | None = None, holder_person: Person | None = None,
                operator: Organization | None = None, wallet_class: int | None = None,
                wallet_type: str | None = None, holder_name: str | None = None,
                status: str = Wallet.Status.ACTIVE) -> Wallet:
    """A wallet and its ledger account (kind wallet, code "wallet:<wallet id>").

    Corporate (WT09) for an organization, personal class 2 (WT01) for a person; neither given: a
    new employer's corporate wallet.
    """
    if holder_org is None and holder_person is None:
        holder_org = make_organization()
    operator = operator or make_operator()
    personal = holder_person is not None
    wallet = Wallet.objects.create(
        wallet_id=make_wallet_id(operator_code=operator.code or DEFAULT_OPERATOR_CODE),
        wallet_type=wallet_type or (Wallet.Type.PERSONAL if personal else Wallet.Type.CORPORATE),
        wallet_class=wallet_class if wallet_class is not None else (2 if personal else None),
        operator=operator,
        holder_org=holder_org,
        holder_person=holder_person,
        holder_name=holder_name or (holder_person.name if personal else holder_org.name),
        status=status,
    )
    LedgerAccount.objects.create(
        code=f"wallet:{wallet.wallet_id}",
        name=wallet.holder_name,
        kind=LedgerAccount.Kind.WALLET,
        wallet=wallet,
        organization=holder_org,
    )
    return wallet


def make_transfer(*, state: str = "pending", payer: Wallet | None = None, payee: Wallet | None = None,
                  amount_fen: int = 100_00, organization: Organization | None = None, batch_ref: str = "",
                  created_at: dt.datetime | None = None, **fields) -> Transfer:
    """A transfer row in `state` (set at creation: the state field is protected from assignment).

    Runs on behalf of the payer's organization unless `organization` is given. No ledger entries are
    posted: tests that need postings use the treasury services.
    """
    payer = payer or make_wallet()
    payee = payee or make_wallet(holder_person=make_person())
    organization = organization or payer.holder_org or make_organization()
    n = _next()
    return Transfer.objects.create(
        idempotency_key=fields.pop("idempotency_key", f"test-{n}"),
        payer=payer,
        payee=payee,
        amount_fen=amount_fen,
        organization=organization,
        batch_ref=batch_ref or f"BATCH-{n}",
        state=state,
        created_at=created_at or timezone.now(),
        **fields,
    )
