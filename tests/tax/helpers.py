"""A tax authority, a treasury whose single account is a wallet at the sandbox operator, taxpayers with
wallets there, and builders of the tax system's messages as the TIPS adapter hands them to the domain."""
from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field

from django.utils import timezone

from adapters.tips.interface import (
    AgreementVerification,
    BatchDeduction,
    DeductionItem,
    MessageHead,
    RealTimeDeduction,
    TaxTypeItem,
    TreasuryAccount,
)
from tax import services
from tax.models import TaxAgreement
from tests import factories as f
from treasury.models import Organization, Wallet

OPERATOR_CODE = "300"
OPERATOR_BANK_CODE = "300100000001"
TAX_ORG_CODE = "13701000000"
TREASURY_CODE = "3701000000"
# Today in the service's time zone: the day the tests' deductions are booked at the operator, so the day
# whose statement and check messages the reconciliation tests compare (a fixed date broke them the next day).
ENTRUST_DATE = timezone.localdate()
_serial = itertools.count(1)


@dataclass
class Taxpayer:
    name: str
    taxpayer_id: str
    wallet_id: str
    personal: bool


@dataclass
class Tax:
    authority: Organization
    treasury_org: Organization
    treasury_wallet: Wallet
    staff: object
    other_staff: object  # tax staff of another tax authority
    ecny: object
    taxpayers: list = field(default_factory=list)

    def treasury_account(self) -> TreasuryAccount:
        return TreasuryAccount(payee_bank_no="011370100001", payee_org_code=TREASURY_CODE,
                               payee_acct=self.treasury_wallet.wallet_id, payee_name=self.treasury_org.name)

    def balance(self, wallet_id: str) -> int:
        return self.ecny.admin.balance(wallet_id=wallet_id)

    def taxpayer(self, *, personal: bool = False, balance_fen: int = 10_000_00, wallet_class: int = 2,
                 name: str | None = None) -> Taxpayer:
        n = len(self.taxpayers) + 1
        wallet_id = f.make_wallet_id(operator_code=OPERATOR_CODE)
        if personal:
            payer = Taxpayer(name or f"纳税人{n}", f.make_resident_id(), wallet_id, True)
            self.ecny.admin.open_wallet(wallet_id=wallet_id, wallet_type="WT01", wallet_class=wallet_class,
                                        holder_name=payer.name, balance_fen=balance_fen)
        else:
            payer = Taxpayer(name or f"示范纳税企业{n}有限公司", f.make_uscc(), wallet_id, False)
            self.ecny.admin.open_wallet(wallet_id=wallet_id, wallet_type="WT09", holder_name=payer.name,
                                        balance_fen=balance_fen)
        self.taxpayers.append(payer)
        return payer

    def sign(self, payer: Taxpayer, *, protocol_no: str | None = None) -> TaxAgreement:
        return services.sign_agreement(
            user=self.staff, tax_org_code=TAX_ORG_CODE, taxpayer_id=payer.taxpayer_id, taxpayer_name=payer.name,
            wallet_id=payer.wallet_id, protocol_no=protocol_no or f"P{next(_serial):08d}",
            signed_date=ENTRUST_DATE, now=timezone.now())

    def signed_and_verified(self, payer: Taxpayer) -> TaxAgreement:
        agreement = self.sign(payer)
        reply = services.handle_agreement_verification(message=verification(agreement), now=timezone.now())
        assert reply.vc_result == "0", reply
        agreement.refresh_from_db()
        return agreement


def head(msg_no: str) -> MessageHead:
    n = next(_serial)
    return MessageHead(version="1.0", src="100000000000", des="300100000001", app="TIPS", msg_no=msg_no,
                       msg_id=f"{n:020d}", msg_ref=f"{n:020d}", work_date=ENTRUST_DATE)


def verification(agreement: TaxAgreement, *, vc_sign: str = "0", **overrides) -> AgreementVerification:
    fields = dict(
        send_org_code=agreement.tax_org_code, entrust_date=ENTRUST_DATE, vc_no=f"{next(_serial):08d}",
        vc_sign=vc_sign, tax_org_code=agreement.tax_org_code, tax_pay_code=agreement.taxpayer_id,
        tax_pay_name=agreement.taxpayer_name, pay_op_bk_code=OPERATOR_BANK_CODE, pay_bk_code=OPERATOR_BANK_CODE,
        pay_acct=agreement.wallet.wallet_id, hand_org_name=agreement.wallet.holder_name,
        protocol_no=agreement.protocol_no,
    )
    fields.update(overrides)
    return AgreementVerification(**fields)


def item(*, payer: Taxpayer, protocol_no: str, amount_fen: int, tra_no: str | None = None,
         tax_type_name: str = "增值税") -> DeductionItem:
    return DeductionItem(
        tra_no=tra_no or f"{next(_serial):08d}", pay_op_bk_code=OPERATOR_BANK_CODE, pay_acct=payer.wallet_id,
        hand_org_name=payer.name, amount_fen=amount_fen, tax_vou_no=f"3{next(_serial):017d}", tax_pay_name=payer.name,
        protocol_no=protocol_no,
        tax_types=(TaxTypeItem(project_id="101010", tax_type_name=tax_type_name, tax_start_date=dt.date(2026, 10, 1),
                               tax_end_date=dt.date(2026, 10, 31), amount_fen=amount_fen),),
    )


def real_time(tax: Tax, *, payer: Taxpayer, protocol_no: str, amount_fen: int, tra_no: str | None = None,
              **kwargs) -> RealTimeDeduction:
    return RealTimeDeduction(head=head("3001"), tax_org_code=TAX_ORG_CODE, entrust_date=ENTRUST_DATE,
                             treasury=tax.treasury_account(),
                             item=item(payer=payer, protocol_no=protocol_no, amount_fen=amount_fen, tra_no=tra_no,
                                       **kwargs))


def batch(tax: Tax, items: list[DeductionItem], *, pack_no: str | None = None, all_num: int | None = None,
          all_amount_fen: int | None = None) -> BatchDeduction:
    return BatchDeduction(
        head=head("3102"), tax_org_code=TAX_ORG_CODE, entrust_date=ENTRUST_DATE,
        pack_no=pack_no or f"{next(_serial):08d}", all_num=len(items) if all_num is None else all_num,
        all_amount_fen=sum(i.amount_fen for i in items) if all_amount_fen is None else all_amount_fen,
        return_term=3, treasury=tax.treasury_account(), items=tuple(items),
    )
