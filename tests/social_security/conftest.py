"""An employer in the sample city (370100) with an operator and an approver, its corporate wallet at the
sandbox operator under an active three-party agreement with the collecting tax authority, whose fund wallet
(社保基金收入户) is registered for the region; another employer; tax staff."""
from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

import pytest
from django.utils import timezone

from social_security.models import FundAccount, Region
from tests import factories as f
from treasury.access import roles
from treasury.models import LedgerAccount, Organization, Wallet
from treasury.services.wallets import register_wallet

OPERATOR_CODE = "300"
TAX_ORG_CODE = "13701000000"
EMPLOYER_USCC = "91350100M000100Y43"
_protocol = itertools.count(1)


@dataclass
class SocialWorld:
    authority: Organization
    fund_wallet: Wallet
    employer: Organization
    wallet: Wallet
    operator_user: object
    approver: object
    second_approver: object
    other_employer: Organization
    other_operator: object
    other_approver: object
    tax_staff: object
    other_tax_staff: object
    ecny: object

    def balance(self, wallet: Wallet) -> int:
        return self.ecny.admin.balance(wallet_id=wallet.wallet_id)


def _employer(ecny, operator, *, name: str, uscc: str, balance_fen: int):
    org = Organization.objects.create(org_type=Organization.Type.EMPLOYER, name=name, uscc=uscc)
    wallet_id = f.make_wallet_id(operator_code=OPERATOR_CODE)
    wallet = register_wallet(wallet_id=wallet_id, wallet_type=Wallet.Type.CORPORATE, operator=operator,
                             holder_org=org, holder_name=name)
    ecny.admin.open_wallet(wallet_id=wallet_id, wallet_type="WT09", holder_name=name, balance_fen=balance_fen)
    return org, wallet


def sign_active_agreement(*, staff, employer: Organization, wallet: Wallet):
    """A three-party agreement signed by tax staff and verified by the tax system (active on verify)."""
    from tax import services as tax_services
    from tests.tax.helpers import verification

    agreement = tax_services.sign_agreement(
        user=staff, tax_org_code=TAX_ORG_CODE, taxpayer_id=employer.uscc, taxpayer_name=employer.name,
        wallet_id=wallet.wallet_id, protocol_no=f"SI{next(_protocol):08d}", signed_date=dt.date(2026, 1, 5),
        now=timezone.now())
    reply = tax_services.handle_agreement_verification(message=verification(agreement), now=timezone.now())
    assert reply.vc_result == "0", reply
    agreement.refresh_from_db()
    return agreement


def load_sample_rules() -> None:
    """The sample city's rules as the data migration loads them (a transactional test flushes them)."""
    import importlib

    from django.apps import apps

    importlib.import_module("social_security.migrations.0002_sample_city").load(apps, None)
    importlib.import_module("social_security.migrations.0008_sample_city_work_injury_classes").load(apps, None)


@pytest.fixture
def world(ecny_sandbox, transactional_db) -> SocialWorld:
    load_sample_rules()
    operator = f.make_operator(code=OPERATOR_CODE)
    authority = f.make_organization(org_type=Organization.Type.TAX_AUTHORITY, name="济南市税务局", code=TAX_ORG_CODE)
    other_authority = f.make_organization(org_type=Organization.Type.TAX_AUTHORITY, name="邻市税务局",
                                          code="13702000000")
    fund_id = f.make_wallet_id(operator_code=OPERATOR_CODE)
    fund_wallet = register_wallet(wallet_id=fund_id, wallet_type=Wallet.Type.CORPORATE, operator=operator,
                                  holder_org=authority, holder_name="济南市社会保险基金收入户",
                                  account_kind=LedgerAccount.Kind.WALLET)
    ecny_sandbox.admin.open_wallet(wallet_id=fund_id, wallet_type="WT09", holder_name="济南市社会保险基金收入户")
    FundAccount.objects.create(region=Region.objects.get(code="370100"), tax_authority=authority, wallet=fund_wallet)
    employer, wallet = _employer(ecny_sandbox, operator, name="示范科技有限公司", uscc=EMPLOYER_USCC,
                                 balance_fen=10_000_000_00)
    other, _ = _employer(ecny_sandbox, operator, name="邻家制造有限公司", uscc="91310110666007217T",
                         balance_fen=1_000_000_00)
    staff = f.make_user(role=roles.TAX_STAFF, organization=authority)
    sign_active_agreement(staff=staff, employer=employer, wallet=wallet)
    return SocialWorld(
        authority=authority, fund_wallet=fund_wallet, employer=employer, wallet=wallet,
        operator_user=f.make_user(role=roles.EMPLOYER_OPERATOR, organization=employer),
        approver=f.make_user(role=roles.EMPLOYER_APPROVER, organization=employer),
        second_approver=f.make_user(role=roles.EMPLOYER_APPROVER, organization=employer),
        other_employer=other, other_operator=f.make_user(role=roles.EMPLOYER_OPERATOR, organization=other),
        other_approver=f.make_user(role=roles.EMPLOYER_APPROVER, organization=other),
        tax_staff=staff, other_tax_staff=f.make_user(role=roles.TAX_STAFF, organization=other_authority),
        ecny=ecny_sandbox)


class FakeTips:
    """Stands in for the TIPS client: confirms declarations with a voucher (or refuses the next ones), records
    payment notices; `unreachable` makes the next calls raise TipsUnavailable."""

    def __init__(self):
        self.declarations, self.payments, self.flexible_payments = [], [], []
        self.refuse_next: list[str] = []
        self.unreachable = 0

    def _maybe_fail(self):
        from adapters.tips.interface import TipsUnavailable

        if self.unreachable:
            self.unreachable -= 1
            raise TipsUnavailable("connection refused")

    def send_social_declaration(self, declaration):
        from adapters.tips.interface import SocialDeclarationReply

        self.declarations.append(declaration)
        self._maybe_fail()
        if self.refuse_next:
            return SocialDeclarationReply(ori_msg_id="0" * 20, ori_tax_org_code=declaration.tax_org_code,
                                          ori_decl_no=declaration.decl_no, result="S0001",
                                          add_word=self.refuse_next.pop(0))
        return SocialDeclarationReply(ori_msg_id="0" * 20, ori_tax_org_code=declaration.tax_org_code,
                                      ori_decl_no=declaration.decl_no, result="90000",
                                      vou_no=f"SI{declaration.period}{len(self.declarations):010d}",
                                      confirmed_amount_fen=declaration.all_amount_fen)

    def send_social_payment(self, payment):
        from adapters.tips.interface import Acknowledgement

        self.payments.append(payment)
        self._maybe_fail()
        return Acknowledgement(ori_msg_id="0" * 20, result="90000")

    def send_social_flexible_payment(self, payment):
        from adapters.tips.interface import Acknowledgement

        self.flexible_payments.append(payment)
        self._maybe_fail()
        return Acknowledgement(ori_msg_id="0" * 20, result="90000")


@pytest.fixture
def fake_tips(monkeypatch):
    from social_security import services

    fake = FakeTips()
    monkeypatch.setattr(services, "_tips", lambda: fake)
    return fake
