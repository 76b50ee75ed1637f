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
# The tax tests run with the clock moved to noon of that day and ticking from there (the `on_entrust_date`
# fixture): a run that crosses midnight in the service's time zone would otherwise book later tests' deductions,
# entries and statements on the next day while they compare ENTRUST_DATE's.
ENTRUST_NOON = dt.datetime.combine(ENTRUST_DATE, dt.time(12), tzinfo=timezone.get_default_timezone())
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


# ----------------------------------------------------------------- speaking as the tax system over HTTP
# For tests that need a message the sandbox tax system will not send (a serial used again under a new MsgID, a
# hostile body): they write it themselves, sign it with the sandbox's own key and POST it to the live endpoint.

SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:ecny-treasury:tips:v1:Send"'}


def register_over_tips(tips_sandbox, payer: Taxpayer, protocol_no: str, *, vc_sign: str = "0") -> dict:
    """The sandbox tax system registers `payer`'s agreement `protocol_no` and sends its 9114 (VCSign 0 verify,
    1 delete); the 9115 as the sandbox read it."""
    return tips_sandbox.admin.register_agreement(
        tax_pay_code=payer.taxpayer_id, tax_pay_name=payer.name, pay_acct=payer.wallet_id, protocol_no=protocol_no,
        tax_org_code=TAX_ORG_CODE, pay_op_bk_code=OPERATOR_BANK_CODE, pay_bk_code=OPERATOR_BANK_CODE, vc_sign=vc_sign)


def tax_system_key(tmp_path):
    """The sandbox tax system's private key: the `tips_sandbox` fixture keeps it at tmp_path/tips-sandbox.pem, and
    the service trusts its public key."""
    from adapters.tips.signing import ensure_key_pair

    key_file = tmp_path / "tips-sandbox.pem"
    assert key_file.exists(), "the tips_sandbox fixture keeps its key elsewhere"
    return ensure_key_pair(key_file)


def tips_soap_url(live_server) -> str:
    return f"{live_server.url}/tips/soap/"


def post_soap(live_server, body: bytes):
    """POST raw bytes to the service's live TIPS endpoint over HTTP; the `requests` response."""
    import requests

    return requests.post(tips_soap_url(live_server), data=body, headers=SOAP_HEADERS, timeout=60)


def signed_soap(document: bytes, key) -> bytes:
    from adapters.tips import messages as m
    from adapters.tips.signing import sign_with

    return m.soap_message(m.SignedDocument(document=document, signature=sign_with(key, document)))


def signed_reply(response):
    """(reply document, its body) of a 200 answer, after checking the service's signature over it."""
    from adapters.tips import messages as m
    from adapters.tips.signing import verify_with
    from treasury import keys

    assert response.status_code == 200, response.content[:500]
    signed = m.read_soap(response.content, max_bytes=10 ** 7, expected=m.SEND_RESPONSE)
    assert isinstance(signed, m.SignedDocument), signed
    assert verify_with(keys.service_public_key(), signed.document, signed.signature)
    doc = m.read_document(signed.document, max_bytes=10 ** 7)
    return doc, m.read_body(doc)


def soap_fault(response):
    """The SoapFault of a 500 answer."""
    from adapters.tips import messages as m

    assert response.status_code == 500, (response.status_code, response.content[:500])
    fault = m.read_soap(response.content, max_bytes=10 ** 6, expected=m.SEND_RESPONSE)
    assert isinstance(fault, m.SoapFault), fault
    return fault


def stored_real_time(msg_id: str) -> RealTimeDeduction:
    """The 3001 the service received (first) under `msg_id`, read back from its message log."""
    from adapters.tips import messages as m
    from adapters.tips.messagelog import body_bytes
    from adapters.tips.models import TipsMessage

    row = TipsMessage.objects.filter(direction=TipsMessage.Direction.INBOUND, msg_no="3001", msg_id=msg_id).earliest("id")
    return m.read_real_time(m.read_document(body_bytes(row), max_bytes=10 ** 7))


def new_tax_system_head(msg_no: str) -> MessageHead:
    """A fresh head (new MsgID) from the tax system's node to the service's, as the `tips_sandbox` fixture sets them."""
    from django.conf import settings

    from adapters.tips import messages as m

    return m.new_head(msg_no=msg_no, src=settings.TIPS_PEER_NODE_CODE, des=settings.TIPS_NODE_CODE,
                      work_date=timezone.localdate())
