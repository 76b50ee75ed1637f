"""A sample city (370100, loaded by the rules' data migration) whose flexible premiums are collected by a tax
authority into a social-insurance fund wallet at the sandbox operator, and individuals who log in as
themselves with personal wallets there."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group, User

from social_security.flexible import services
from social_security.models import FundAccount, Region
from tests import factories as f
from treasury.access import roles
from treasury.access.models import PersonalAccount
from treasury.models import LedgerAccount, Organization, Wallet
from treasury.services.wallets import register_wallet

SHANGHAI = ZoneInfo("Asia/Shanghai")
OPERATOR_CODE = "300"
# 2026-11-26 10:00 in Shanghai: September is overdue (due 2026-10-31), October and November are not.
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=SHANGHAI)


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)


@dataclass
class Individual:
    user: User
    person: object
    wallet_id: str


@dataclass
class Flexible:
    authority: Organization
    fund_wallet: Wallet
    staff: User
    other_staff: User
    ecny: object
    people: list = field(default_factory=list)

    def balance(self, wallet_id: str) -> int:
        return self.ecny.admin.balance(wallet_id=wallet_id)

    def individual(self, *, name: str | None = None, balance_fen: int = 100_000_00, wallet_class: int = 2,
                   open_wallet: bool = True) -> Individual:
        return make_individual(ecny=self.ecny, name=name or f"参保人{len(self.people) + 1}", balance_fen=balance_fen,
                               wallet_class=wallet_class, open_wallet=open_wallet, people=self.people)

    def enrol(self, who: Individual, *, level: int = 100, frequency: str = "monthly",
              start: dt.date = dt.date(2026, 9, 1), now: dt.datetime = NOW):
        return services.enrol(user=who.user, region_code="370100", base_level=level, frequency=frequency,
                              wallet_id=who.wallet_id, start_month=start, now=now)


def make_individual(*, ecny, name: str, balance_fen: int = 100_000_00, wallet_class: int = 2,
                    open_wallet: bool = True, people: list | None = None) -> Individual:
    user = f.make_user(role=None)
    user.groups.add(Group.objects.get_or_create(name=roles.INDIVIDUAL)[0])
    person = f.make_person(name=name)
    PersonalAccount.objects.create(user=user, person=person)
    wallet_id = f.make_wallet_id(operator_code=OPERATOR_CODE)
    if open_wallet:
        ecny.admin.open_wallet(wallet_id=wallet_id, wallet_type="WT01", wallet_class=wallet_class, holder_name=name,
                               balance_fen=balance_fen)
    who = Individual(user=user, person=person, wallet_id=wallet_id)
    if people is not None:
        people.append(who)
    return who


def load_sample_city() -> Region:
    """The sample city as its data migration loads it (a transactional test flushes tables afterwards)."""
    import importlib

    from django.apps import apps

    if not Region.objects.filter(code="370100").exists():
        importlib.import_module("social_security.migrations.0002_sample_city").load(apps, None)
        importlib.import_module("social_security.migrations.0008_sample_city_work_injury_classes").load(apps, None)
    return Region.objects.get(code="370100")


def make_fund_account(ecny) -> tuple[Organization, Wallet]:
    f.make_operator(code=OPERATOR_CODE)
    authority = f.make_organization(org_type=Organization.Type.TAX_AUTHORITY, name="示范市税务局", code="13701000000")
    fund_org = f.make_organization(org_type=Organization.Type.SOCIAL_INSURANCE_AGENCY, name="示范市社会保险基金")
    wallet_id = f.make_wallet_id(operator_code=OPERATOR_CODE)
    fund_wallet = register_wallet(wallet_id=wallet_id, wallet_type=Wallet.Type.CORPORATE,
                                  operator=Organization.objects.get(org_type="operator_bank", code=OPERATOR_CODE),
                                  holder_org=fund_org, holder_name=fund_org.name,
                                  account_kind=LedgerAccount.Kind.WALLET)
    ecny.admin.open_wallet(wallet_id=wallet_id, wallet_type="WT09", holder_name=fund_org.name)
    FundAccount.objects.create(region=load_sample_city(), tax_authority=authority, wallet=fund_wallet)
    return authority, fund_wallet


@pytest.fixture(autouse=True)
def _tips_stand_in(request, monkeypatch):
    """Payment notices (5104) go to a stand-in that acknowledges them, unless the test runs the sandbox tax
    system (`tips_sandbox`): nothing reaches whatever listens on the configured TIPS address."""
    if "tips_sandbox" in request.fixturenames:
        return None
    from social_security import services as social_services
    from tests.social_security.conftest import FakeTips

    fake = FakeTips()
    monkeypatch.setattr(social_services, "_tips", lambda: fake)
    return fake


@pytest.fixture
def flex(ecny_sandbox, transactional_db):
    authority, fund_wallet = make_fund_account(ecny_sandbox)
    other = f.make_organization(org_type=Organization.Type.TAX_AUTHORITY, name="邻市税务局", code="13702000000")
    return Flexible(authority=authority, fund_wallet=fund_wallet,
                    staff=f.make_user(role=roles.TAX_STAFF, organization=authority),
                    other_staff=f.make_user(role=roles.TAX_STAFF, organization=other), ecny=ecny_sandbox)
